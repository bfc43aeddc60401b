//! The `toolgate` command line.

fn main() -> std::process::ExitCode {
    toolgate::cli::main()
}
