import CCLBackend
import CCLCollectives
import CCLCore
import CCLStore

/// Makes the CPU communicator of a group (vLLM's `cpu_group` / torch's Gloo group) through the
/// backend registry: shm inside a node, tcp with one rank per node, hierarchical otherwise, or
/// what `options.request` (`CCL_BACKEND`) or `options.transport` (`CCL_TRANSPORT`) asks for.
public enum CPUCommunicatorFactory {
    /// The request `options` make: `request` when it names backends, else `transport` as a
    /// strict request (`CCL_TRANSPORT=shm` on a multi-node group is an error, as before).
    public static func request(_ options: CollectiveOptions) -> BackendRequest {
        guard options.request.preferred.isEmpty, options.transport != .auto else { return options.request }
        return BackendRequest(preferred: [options.transport.rawValue], strict: true, origin: "CCL_TRANSPORT")
    }

    /// Collective over `group`; `nodes` gives the node of each of its ranks (group order).
    public static func create(group: StatelessProcessGroup, nodes: NodeLayout, options: CollectiveOptions = CollectiveOptions())
        throws(CCLError) -> any Communicator
    {
        try make(group: group, nodes: nodes, options: options).communicator
    }

    /// `create`, also saying which backend was chosen and why.
    public static func make(group: StatelessProcessGroup, nodes: NodeLayout, options: CollectiveOptions = CollectiveOptions())
        throws(CCLError) -> (communicator: any Communicator, decision: BackendChoice.Decision)
    {
        try BackendRegistry(options: options).makeCommunicator(
            group: group, nodes: nodes, device: .host, request: request(options), launcher: options.launcher)
    }
}

/// The factory's earlier name.
@available(*, deprecated, renamed: "CPUCommunicatorFactory")
public typealias CPUCommunicator = CPUCommunicatorFactory
