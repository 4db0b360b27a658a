//! The full-screen console.

use crate::config::Loaded;
use crate::context::Overrides;

pub async fn run(_loaded: Loaded, _overrides: &Overrides) -> anyhow::Result<()> {
    anyhow::bail!("the console is not built yet: use `flametree channels …` (see --help)")
}
