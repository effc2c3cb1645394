use clap::Parser;

#[tokio::main]
async fn main() {
    weir::git::tune_libgit2();
    let cli = weir::cli::Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG").unwrap_or_else(|_| "warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // JSON lines for log shippers (the daemon); human-readable text otherwise.
    if cli.log_format() == weir::cli::LogFormat::Json {
        logs.json().init();
    } else {
        logs.init();
    }
    match weir::cli::run(cli).await {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("weir: error: {e:#}");
            std::process::exit(1);
        }
    }
}
