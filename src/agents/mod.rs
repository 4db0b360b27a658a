//! Agents answer customers. Until agents can be attached to connections, every running
//! channel answers with the built-in echo responder, so a round trip can be seen end
//! to end.

/// The built-in responder: says back what it was told.
pub fn echo_reply(text: &str) -> String {
    format!("You said: {text}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn echo_says_it_back() {
        assert_eq!(super::echo_reply("hi"), "You said: hi");
    }
}
