import ArgumentParser
import CCLSystem
import Foundation

/// `ccl rank-exec --parent PID -- program args` (hidden): what `ccl launch` starts for each rank.
/// It ties itself to the launcher (`PR_SET_PDEATHSIG`, kept across exec) and becomes the rank's
/// program, so every rank dies with a launcher that is SIGKILLed, whatever the program is.
struct RankExecCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rank-exec", shouldDisplay: false)

    @Option(help: "The launcher's pid.") var parent: Int32
    @Argument(parsing: .captureForPassthrough) var program: [String] = []

    func run() throws {
        let command = program.first == "--" ? Array(program.dropFirst()) : program
        guard let path = command.first else { throw ValidationError("give the program after --") }
        try ProcessReplacement.dieWithParent(parent)
        try ProcessReplacement.exec(path, arguments: command)
    }
}
