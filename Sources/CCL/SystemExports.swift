import CCLSystem

/// Which machine (node) this process runs on: `CCL_NODE_ID` when set, else the boot id and
/// network namespace; what `NodeLayout` gathers. Here so that `import CCL` is enough.
public typealias NodeIdentity = CCLSystem.NodeIdentity
