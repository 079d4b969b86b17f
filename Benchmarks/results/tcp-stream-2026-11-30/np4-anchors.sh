# NP ranks (default 4) over TCP loopback: swift-ccl's all-reduce (halving-doubling from 64 KiB) beside Open MPI
# (btl tcp) and Gloo, interleaved, ROUNDS rounds; anchors built by Benchmarks/collectives-vs-anchors.sh.
cd /work/main
A=/tmp/ccl-anchors/build
P=Benchmarks/results/tcp-stream-2026-11-30/p50s.py
for r in $(seq 1 ${1:-3}); do
  echo "$r ccl $(.build/release/ccl bench allreduce --nproc ${NP:-4} --transport tcp --sizes 8,64K,1M,16M --target-ms 200 --no-check 2>&1 | awk '!/^#/ && NR>4{printf "%s:%s ", $1, $6}')"
  echo "$r openmpi $(mpirun.openmpi --allow-run-as-root --oversubscribe --mca oob_tcp_if_include lo --mca btl_tcp_if_include lo --mca pml ob1 --mca btl tcp,self -np ${NP:-4} $A/mpi_bench_openmpi --ops allreduce --sizes 8,64K,1M,16M --target-ms 200 --label np4 2>/dev/null | python3 $P)"
  store=$(mktemp -d); pids=()
  for ((k = 0; k < ${NP:-4}; k++)); do $A/gloo_bench --rank $k --nranks ${NP:-4} --store $store --host 127.0.0.1 --ops allreduce --sizes 8,64K,1M,16M --target-ms 200 --label np4 > $store/out.$k 2>/dev/null & pids+=($!); done
  for p in "${pids[@]}"; do wait $p; done
  echo "$r gloo $(python3 $P $store/out.0)"
  rm -rf $store
done
