//! The CLI demo: the web demo's flows in a terminal, on the same SQLite file.
//!
//! ```sh
//! cargo run --example cli --features sqlite,seal -- enroll emma      # password, then a code
//! cargo run --example cli --features sqlite,seal -- login emma
//! printf 'demo-password\n' | cargo run --example cli --features sqlite,seal -- status emma
//! ```
//!
//! Interactive on a terminal (prompts); scriptable from arguments and standard input (one
//! password or code per line). Run it without arguments for the commands.

#[allow(dead_code)] // the web demo's core: the CLI uses most of it
#[path = "../web/demo.rs"]
mod demo;
mod reseal;
mod run;
mod twofa;

use std::io::IsTerminal as _;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tty = std::io::stdin().is_terminal();
    let code = run::run(
        &args,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout(),
        tty,
    )
    .await?;
    std::process::exit(code);
}
