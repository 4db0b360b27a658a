//! Option fields (a SIP transport, a security mode, a true/false variable): Space and
//! ←/→ step through the catalog's options instead of leaving the operator to type one.
//! A per-account option field (IMAP security) holding several values stays typed text
//! (one value per account, comma-separated) and steps only while it holds one value.

use super::form::{Form, Slot};

/// The options of the slot, and whether it is per-account, when it is an option field.
pub fn options(form: &Form, slot: &Slot) -> Option<(&'static [String], bool)> {
    use crate::catalog::FieldKind;
    match slot {
        Slot::Field(i) => {
            let spec = form.ty.fields.get(*i)?;
            (spec.kind == FieldKind::Choice && !spec.options.is_empty())
                .then_some((spec.options.as_slice(), spec.multi))
        }
        Slot::EnvValue(i) => {
            let name = form.value(&Slot::EnvName(*i));
            let spec = form.ty.env_var(name.trim())?;
            (spec.kind == FieldKind::Choice && !spec.options.is_empty())
                .then_some((spec.options.as_slice(), false))
        }
        _ => None,
    }
}

/// The option `step` places after `current` (case-insensitively), round the list; the
/// first (or last) when `current` is none of them.
pub fn step(current: &str, options: &[String], step: isize) -> String {
    let n = options.len() as isize;
    let at = options
        .iter()
        .position(|o| o.eq_ignore_ascii_case(current.trim()));
    let next = match at {
        Some(i) => (i as isize + step).rem_euclid(n),
        None if step >= 0 => 0,
        None => n - 1,
    };
    options[next as usize].clone()
}

/// "Space or ←→: udp · tcp · tls", for the hint under a focused option field.
pub fn hint(options: &[String]) -> String {
    format!("Space or ←→ chooses: {}", options.join(" · "))
}

#[cfg(test)]
mod tests {
    use super::step;

    #[test]
    fn steps_round_the_options() {
        let o: Vec<String> = ["udp", "tcp", "tls"].map(String::from).to_vec();
        assert_eq!(step("udp", &o, 1), "tcp");
        assert_eq!(step("TLS", &o, 1), "udp");
        assert_eq!(step("udp", &o, -1), "tls");
        assert_eq!(step("", &o, 1), "udp");
        assert_eq!(step("bogus", &o, -1), "tls");
    }
}
