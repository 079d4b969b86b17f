cd /work/main
for rep in 1 2 3 4 5; do
for n in 2 3 4 8; do for a in default oneshot twoshot; do
if [ $a = default ]; then unset CCL_ALGO; else export CCL_ALGO=$a; fi
.build/release/ccl bench allreduce --nproc $n --transport shm --sizes 8,1K,16K,64K,256K,1M --no-check --target-ms 150 2>&1 | awk -v n=$n -v a=$a -v r=$rep '/shm costs/{print "#", r, n, a, $0} !/^#/ && NR>4{print r, n, a, $1, $6}'
done; done; done
unset CCL_ALGO
