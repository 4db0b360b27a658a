//! The shipped config.example.toml parses and documents every setting there is.

use std::collections::BTreeSet;
use std::path::Path;

fn keys(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) if path != "access.roles" => keys(t, &path, out),
            _ => {
                out.insert(path);
            }
        }
    }
}

#[test]
fn example_config_loads_and_names_every_setting() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let loaded = flametree::config::load(Some(&path), &[]).expect("config.example.toml loads");
    assert_eq!(loaded.file.as_deref(), Some(path.as_path()));
    assert_eq!(loaded.config.general.tenant, "default");

    let text = std::fs::read_to_string(&path).unwrap();
    let example: toml::Table = toml::from_str(&text).unwrap();
    let (mut documented, mut known) = (BTreeSet::new(), BTreeSet::new());
    keys(&example, "", &mut documented);
    keys(&flametree::config::defaults_table(), "", &mut known);
    assert_eq!(
        documented, known,
        "config.example.toml must list exactly the settings flametree has"
    );
}
