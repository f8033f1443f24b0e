fn main() -> std::process::ExitCode {
    dcbstore::cli::main()
}
