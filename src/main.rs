fn main() -> std::process::ExitCode {
    jina::cli::main()
}
