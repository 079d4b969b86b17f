for r in 1 2 3 4 5 6; do for b in old new; do
bin=/work/main/.build/release/ccl; [ $b = old ] && bin=/tmp/oldq/.build/release/ccl
for n in 1 3; do
echo "$r $b $n $($bin bench queue --readers $n --sizes 64,1M,16M --chunk 1M --chunks 8 --idle-seconds 0.05 --scale 0.5 2>&1 | awk '!/^#/ && NR>2 {printf "%s:%s:%s ", $2, $3, $6}')"
done; done; done
