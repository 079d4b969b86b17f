/// The version of swift-ccl this build is (`ccl --version`; `ccl doctor` compares it across a
/// job's ranks).
public enum SwiftCCLVersion {
    /// Semantic version of the package.
    public static let current = "0.6.0"
}
