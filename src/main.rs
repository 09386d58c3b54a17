//! The `fineo-batch` binary: parsing, logging and dispatch live in `cli`.

mod cli;

fn main() {
    std::process::exit(cli::run());
}
