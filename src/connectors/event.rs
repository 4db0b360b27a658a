//! What connectors hand to the runtime: normalized inbound messages, and provider
//! events that are recognised but never answered.

/// A customer's message, normalized across providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The account it arrived at (multi-account types); empty for single-account ones.
    pub account: String,
    /// The provider's own id of the message: redelivery is recognised by it.
    pub provider_id: String,
    /// Who to answer, in the connector's terms (chat id, phone number, address).
    pub customer: String,
    pub display_name: String,
    pub text: String,
    /// The provider's payload as received.
    pub raw: String,
}

impl Inbound {
    /// The ledger key: provider ids are unique per account.
    pub fn key(&self) -> String {
        if self.account.is_empty() {
            self.provider_id.clone()
        } else {
            format!("{}/{}", self.account, self.provider_id)
        }
    }
}

/// A delivery or read report about a message we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The provider's id of our message.
    pub provider_message_id: String,
    /// delivered, read, failed …
    pub status: String,
    pub failed: bool,
    /// The provider's explanation of a failure.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Message(Inbound),
    Delivery(Delivery),
    /// A copy of a message we sent (echo): logged, never answered.
    Echo {
        note: String,
    },
    /// Recognised but nothing to do (a reaction, an unsupported type); logged in one line.
    Ignored {
        note: String,
    },
}
