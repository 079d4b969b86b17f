import CCL

// vLLM's rank layout from code, without launching anything: what `ccl topology` prints.

// README: topology
let layout = try ParallelLayout(world: 16, tp: 4, pp: 2, dp: 2)
print(layout.ppGroups)  // [[0, 4], [1, 5], [2, 6], [3, 7], [8, 12], [9, 13], [10, 14], [11, 15]]
for kind in ParallelLayout.Kind.allCases where layout.groups(kind).first?.count ?? 0 > 1 {
    print(kind, layout.groups(kind))
}
// README: end
