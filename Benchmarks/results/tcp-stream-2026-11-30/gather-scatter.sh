# All-gather and reduce-scatter over TCP: OLD (9bc442b, rings) against NEW (doubling/halving on
# power-of-two groups of 4+), 4 and 8 ranks, alternated. OLD=… NEW=… bash gather-scatter.sh ROUNDS
cd /work/main
for r in $(seq 1 ${1:-3}); do for op in allgather reducescatter; do for np in 4 8; do for b in old new; do
  bin=$OLD; [ $b = new ] && bin=$NEW
  echo "$r np$np-$op $b $($bin bench $op --nproc $np --transport tcp --sizes 8,64K,1M,4M --target-ms 150 --no-check 2>&1 | awk '!/^#/ && NR>4{printf "%s:%s ", $1, $6}')"
done; done; done; done
