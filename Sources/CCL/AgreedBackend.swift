import CCLBackend
import CCLCore
import CCLStore

/// `preferred` where every rank of the group being made can run it, else `fallback`: the choice
/// is made in `make`, from `preferred`'s probe all-gathered over that group, so that no two ranks
/// build different communicators. The hierarchical backend's tier between nodes under mpirun
/// (MPI where every node leader has it, TCP otherwise).
struct AgreedBackend: Backend {
    let preferred: any Backend
    let fallback: any Backend

    var name: String { "\(preferred.name) or \(fallback.name)" }
    var serves: Device.Kind { preferred.serves }

    /// Available when either is (here; `make` agrees across the group).
    func probe(_ context: BackendContext) -> BackendProbe {
        let first = preferred.probe(context)
        return first.isAvailable ? first : fallback.probe(context)
    }

    func make(group: StatelessProcessGroup, nodes: NodeLayout, device: Device) throws(CCLError) -> any Communicator {
        let mine = preferred.probe(BackendContext(device: device.kind, nodes: nodes)).isAvailable
        let everyone = group.worldSize > 1 ? try group.allGatherObject(mine) : [mine]
        return try (everyone.allSatisfy { $0 } ? preferred : fallback).make(group: group, nodes: nodes, device: device)
    }
}
