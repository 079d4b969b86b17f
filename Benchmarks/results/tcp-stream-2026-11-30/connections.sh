# CCL_TCP_CONNECTIONS=1 (the default; "old" column is the build before the option, 9bc442b) and
# 2 and 4 (this build), 2 ranks over loopback, alternated. OLD=… NEW=… bash connections.sh ROUNDS
cd /work/main
for r in $(seq 1 ${1:-3}); do
  echo "$r np2-k1 old $($OLD bench allreduce --nproc 2 --transport tcp --sizes 8,64K,1M,4M,16M,64M --target-ms 150 --no-check 2>&1 | awk '!/^#/ && NR>4{printf "%s:%s ", $1, $6}')"
  for k in 1 2 4; do
    echo "$r np2-k$k new $(CCL_TCP_CONNECTIONS=$k $NEW bench allreduce --nproc 2 --transport tcp --sizes 8,64K,1M,4M,16M,64M --target-ms 150 --no-check 2>&1 | awk '!/^#/ && NR>4{printf "%s:%s ", $1, $6}')"
  done
done
