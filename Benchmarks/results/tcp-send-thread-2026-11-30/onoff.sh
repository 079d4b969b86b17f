cd /work/main
for r in 1 2 3 4; do for t in 0 1; do
echo "$r np2 t$t $(CCL_TCP_SEND_THREAD=$t .build/release/ccl bench allreduce --nproc 2 --transport tcp --sizes 8,256K,1M,4M,16M,64M --target-ms 200 --no-check 2>&1 | awk '!/^#/ && NR>4{printf "%s:%s ", $1, $6}')"
echo "$r np4 t$t $(CCL_TCP_SEND_THREAD=$t .build/release/ccl bench allreduce --nproc 4 --transport tcp --sizes 8,1M,16M --target-ms 200 --no-check 2>&1 | awk '!/^#/ && NR>4{printf "%s:%s ", $1, $6}')"
done; done
