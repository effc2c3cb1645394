use clap::Parser;

#[tokio::main]
async fn main() {
    weir::git::tune_libgit2();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = weir::cli::Cli::parse();
    match weir::cli::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("weir: error: {e:#}");
            std::process::exit(1);
        }
    }
}
