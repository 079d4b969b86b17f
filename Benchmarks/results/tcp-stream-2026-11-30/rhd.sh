# Ring against halving-doubling (CCL_ALGO), 4 and 8 ranks over TCP, interleaved; one build.
cd /work/main
for r in $(seq 1 ${1:-3}); do for np in 4 8; do for a in ring rhd; do
  echo "$r np$np $a $(CCL_ALGO=$a .build/release/ccl bench allreduce --nproc $np --transport tcp --sizes 64K,256K,1M,4M,16M --target-ms 200 --no-check 2>&1 | awk '!/^#/ && NR>4{printf "%s:%s ", $1, $6}')"
done; done; done
