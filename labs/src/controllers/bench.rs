//! `labs bench replicaset`.

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Replicas to scale to (and back from).
    #[arg(long, default_value_t = 10_000)]
    pub replicas: i32,
}

pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    Ok(())
}
