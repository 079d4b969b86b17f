@_exported import CCLBackend
@_exported import CCLCollectives
// The umbrella module: `import CCL` brings in the public API of every capability.
@_exported import CCLCore
@_exported import CCLMPI
@_exported import CCLNCCL
@_exported import CCLQueue
@_exported import CCLStore
@_exported import CCLTopology
