import NIOCore
import NIOPosix

/// Closes `channel` and stops its event-loop `group`: waiting for both from any other thread,
/// without blocking (which NIO forbids) when called on the loop itself, where the last reference
/// to a client may drop.
package func closeChannel(_ channel: any Channel, andShutDown group: MultiThreadedEventLoopGroup) {
    if channel.eventLoop.inEventLoop {
        channel.close(promise: nil)
        group.shutdownGracefully { _ in }
    } else {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}
