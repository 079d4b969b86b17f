# Interleaved A/B of the TCP all-reduce with the defaults: OLD (9bc442b, before halving-doubling
# and the streamed ring) and NEW, 2, 4 and 8 ranks on this 2-CPU machine.
# OLD=/tmp/oldS/.build/release/ccl NEW=.build/release/ccl bash ab.sh ROUNDS
cd /work/main
for r in $(seq 1 ${1:-4}); do for np in 2 4 8; do for b in old new; do
  bin=$OLD; [ $b = new ] && bin=$NEW
  sizes=8,64K,256K,1M,4M,16M; [ $np = 2 ] && sizes=8,64K,1M,4M,16M,64M
  echo "$r np$np $b $($bin bench allreduce --nproc $np --transport tcp --sizes $sizes --target-ms 150 --no-check 2>&1 | awk '!/^#/ && NR>4{printf "%s:%s ", $1, $6}')"
done; done; done
