//! `toy2d`: the toy experiments of the book. `cargo run --release -p toy2d -- --help`.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = toy2d::cli::Cli::parse();
    match toy2d::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
