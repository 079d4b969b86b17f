# The streamed ring forced off ("old" column) and on ("new"), 2 ranks (ring) and 3 ranks, one build.
cd /work/main
for r in $(seq 1 ${1:-4}); do for np in 2 3; do for s in 0 1; do
  b=old; [ $s = 1 ] && b=new
  echo "$r np$np $b $(CCL_TCP_STREAM=$s .build/release/ccl bench allreduce --nproc $np --transport tcp --sizes 4M,16M,64M --target-ms 150 --no-check 2>&1 | awk '!/^#/ && NR>4{printf "%s:%s ", $1, $6}')"
done; done; done
