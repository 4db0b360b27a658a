//! Meta's webhook payloads turned into events: customers' messages, delivery reports,
//! echoes of our own messages, and what is recognised but not answered.

use crate::connectors::{Delivery, Event, Inbound};
use serde_json::Value;

/// WhatsApp Cloud API (`object = whatsapp_business_account`). `numbers` are the
/// connection's phone number ids: a message for another number is not answered.
pub fn whatsapp(v: &Value, numbers: &[String]) -> Vec<Event> {
    let mut out = Vec::new();
    for change in each(v, "entry").flat_map(|e| each(e, "changes")) {
        let value = &change["value"];
        let field = change["field"].as_str().unwrap_or("");
        let number = value["metadata"]["phone_number_id"].as_str().unwrap_or("");
        let ours = numbers.iter().any(|n| n == number);
        for m in each(value, "messages") {
            let id = m["id"].as_str().unwrap_or("");
            if !ours {
                out.push(Event::Ignored {
                    note: format!(
                        "message {id} for phone number id {number}, which is not in this \
                         connection (Phone number IDs); not answered"
                    ),
                });
                continue;
            }
            let customer = m["from"]
                .as_str()
                .or(m["from_user_id"].as_str())
                .unwrap_or("")
                .to_string();
            let name = each(value, "contacts")
                .find(|c| {
                    c["wa_id"].as_str() == Some(customer.as_str())
                        || c["user_id"].as_str() == Some(customer.as_str())
                })
                .and_then(|c| c["profile"]["name"].as_str())
                .unwrap_or("")
                .to_string();
            match whatsapp_text(m) {
                Ok(text) if !customer.is_empty() && !id.is_empty() => {
                    out.push(Event::Message(Inbound {
                        account: number.to_string(),
                        provider_id: id.to_string(),
                        customer,
                        display_name: name,
                        text,
                        raw: m.to_string(),
                    }))
                }
                Ok(_) => out.push(Event::Ignored {
                    note: "a WhatsApp message without a sender or id; not answered".into(),
                }),
                Err(what) => out.push(Event::Ignored {
                    note: format!("{what} from {customer} (message {id}); not answered"),
                }),
            }
        }
        for s in each(value, "statuses") {
            let status = s["status"].as_str().unwrap_or("").to_string();
            let detail = each(s, "errors")
                .map(|e| {
                    let mut d = format!(
                        "{} {}",
                        e["code"].as_i64().unwrap_or(0),
                        e["title"].as_str().or(e["message"].as_str()).unwrap_or("")
                    );
                    if let Some(x) = e["error_data"]["details"].as_str() {
                        d.push_str(&format!(": {x}"));
                    }
                    if e["code"].as_i64() == Some(131047) {
                        d.push_str(" (more than 24 hours since the customer's last message: only an approved template can reach them now)");
                    }
                    d
                })
                .collect::<Vec<_>>()
                .join("; ");
            out.push(Event::Delivery(Delivery {
                provider_message_id: s["id"].as_str().unwrap_or("").to_string(),
                failed: status == "failed",
                status,
                detail,
            }));
        }
        for e in each(value, "message_echoes") {
            out.push(Event::Echo {
                note: format!(
                    "a message sent from the WhatsApp Business app to {} ({})",
                    e["to"].as_str().unwrap_or("?"),
                    e["id"].as_str().unwrap_or("?")
                ),
            });
        }
        if out.is_empty() && field != "messages" {
            out.push(Event::Ignored {
                note: format!("a WhatsApp '{field}' notification; nothing to answer"),
            });
        }
    }
    out
}

fn whatsapp_text(m: &Value) -> Result<String, String> {
    let kind = m["type"].as_str().unwrap_or("");
    let text = match kind {
        "text" => m["text"]["body"].as_str(),
        "button" => m["button"]["text"].as_str(),
        "interactive" => m["interactive"]["button_reply"]["title"]
            .as_str()
            .or(m["interactive"]["list_reply"]["title"].as_str()),
        "reaction" => return Err("a reaction".into()),
        _ => None,
    };
    if let Some(errors) = m["errors"].as_array().filter(|e| !e.is_empty()) {
        return Err(format!(
            "a message Meta could not deliver whole ({})",
            errors[0]["title"].as_str().unwrap_or("error")
        ));
    }
    text.map(str::to_string)
        .ok_or_else(|| format!("a '{kind}' message (not supported yet)"))
}

/// Messenger (`object = page`) and Instagram (`object = instagram`): `entry[].messaging[]`.
pub fn messaging(v: &Value, product: &str) -> Vec<Event> {
    let mut out = Vec::new();
    for m in each(v, "entry").flat_map(|e| each(e, "messaging")) {
        let sender = m["sender"]["id"].as_str().unwrap_or("").to_string();
        let msg = &m["message"];
        if msg.is_object() {
            let mid = msg["mid"].as_str().unwrap_or("");
            if msg["is_echo"].as_bool() == Some(true) {
                out.push(Event::Echo {
                    note: format!("our own {product} message {mid} came back (echo)"),
                });
            } else if msg["is_deleted"].as_bool() == Some(true) {
                out.push(Event::Ignored {
                    note: format!("{sender} unsent message {mid}"),
                });
            } else if let Some(text) = msg["text"].as_str().filter(|t| !t.trim().is_empty()) {
                out.push(Event::Message(Inbound {
                    account: String::new(),
                    provider_id: mid.to_string(),
                    customer: sender,
                    display_name: String::new(),
                    text: text.to_string(),
                    raw: m.to_string(),
                }));
            } else {
                out.push(Event::Ignored {
                    note: format!(
                        "a {product} message without text from {sender} (message {mid}, e.g. \
                         an attachment); not answered"
                    ),
                });
            }
        } else if m["postback"].is_object() {
            let p = &m["postback"];
            let title = p["title"].as_str().or(p["payload"].as_str()).unwrap_or("");
            let mid = p["mid"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("postback:{sender}:{}", m["timestamp"]));
            out.push(Event::Message(Inbound {
                account: String::new(),
                provider_id: mid,
                customer: sender,
                display_name: String::new(),
                text: title.to_string(),
                raw: m.to_string(),
            }));
        } else if m["delivery"].is_object() {
            for mid in each(&m["delivery"], "mids") {
                out.push(Event::Delivery(Delivery {
                    provider_message_id: mid.as_str().unwrap_or("").to_string(),
                    status: "delivered".into(),
                    failed: false,
                    detail: String::new(),
                }));
            }
        } else {
            let what = ["read", "reaction", "standby", "optin", "referral"]
                .into_iter()
                .find(|k| !m[*k].is_null())
                .unwrap_or("unknown");
            out.push(Event::Ignored {
                note: format!("a {product} '{what}' event from {sender}; nothing to answer"),
            });
        }
    }
    // `standby` arrives beside `messaging` when another app owns the thread.
    for s in each(v, "entry").flat_map(|e| each(e, "standby")) {
        out.push(Event::Ignored {
            note: format!(
                "a {product} message from {} while another app owns the conversation \
                 (standby); not answered",
                s["sender"]["id"].as_str().unwrap_or("?")
            ),
        });
    }
    out
}

fn each<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v[key].as_array().into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WA_TEXT: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"122951744235903","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550984277","phone_number_id":"114896151713920"},"contacts":[{"profile":{"name":"Lee Jen Ling"},"wa_id":"60173526233"}],"messages":[{"from":"60173526233","id":"wamid.HBgLNjAxNzM1MjYyMzMVAgASGBQzQUI0NkE4NjM1QTU2NjVGOURGQgA=","timestamp":"1694427240","text":{"body":"Hihu"},"type":"text"}]},"field":"messages"}]}]}"#;
    const WA_STATUS: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"122951744235903","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550984277","phone_number_id":"114896151713920"},"statuses":[{"id":"wamid.HBgLNjAxNzM1MjYyMzMVAgARGBJCNkY5NTBENEU3ODYxQTM3RUQA","status":"sent","timestamp":"1694492482","recipient_id":"60173526233"}]},"field":"messages"}]}]}"#;
    const FB_TEXT: &str = r#"{ "object":"page", "entry":[ { "id":"111111", "time":1457764198246, "messaging":[ { "sender":{ "id":"USER_ID" }, "recipient":{ "id":"PAGE_ID" }, "timestamp":1457764197627, "message":{ "mid":"mid.1457764197618:41d102a3e1ae206a38", "seq":73, "text":"hello, world!" } } ] } ] }"#;
    const IG_TEXT: &str = r#"{"object":"instagram","entry":[{"id":"IGID","time":1569262486134,"messaging":[{"sender":{"id":"IGSID"},"recipient":{"id":"IGID"},"timestamp":1569262485349,"message":{"mid":"MESSAGE-ID","text":"MESSAGE-TEXT"}}]}]}"#;

    fn json(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn a_captured_whatsapp_text_becomes_a_message_from_its_number() {
        let ev = whatsapp(&json(WA_TEXT), &["114896151713920".into()]);
        let [Event::Message(m)] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!(m.account, "114896151713920");
        assert_eq!(m.customer, "60173526233");
        assert_eq!(m.display_name, "Lee Jen Ling");
        assert_eq!(m.text, "Hihu");
        assert!(m.provider_id.starts_with("wamid."));
        let ev = whatsapp(&json(WA_TEXT), &["999".into()]);
        assert!(
            matches!(ev.as_slice(), [Event::Ignored { note }] if note.contains("not in this connection"))
        );
    }

    #[test]
    fn a_customer_without_a_phone_number_is_known_by_user_id() {
        let bsuid = WA_TEXT
            .replace(
                r#""wa_id":"60173526233""#,
                r#""user_id":"IN.2081978709342942""#,
            )
            .replace(
                r#""from":"60173526233","#,
                r#""from_user_id":"IN.2081978709342942","#,
            );
        let ev = whatsapp(&json(&bsuid), &["114896151713920".into()]);
        let [Event::Message(m)] = ev.as_slice() else {
            panic!("{ev:?}")
        };
        assert_eq!(m.customer, "IN.2081978709342942");
        assert_eq!(m.display_name, "Lee Jen Ling");
    }

    #[test]
    fn a_status_is_a_delivery_report() {
        let ev = whatsapp(&json(WA_STATUS), &["114896151713920".into()]);
        assert!(matches!(ev.as_slice(), [Event::Delivery(d)] if d.status == "sent" && !d.failed));
    }

    #[test]
    fn messenger_and_instagram_samples_become_messages() {
        let ev = messaging(&json(FB_TEXT), "Messenger");
        assert!(
            matches!(ev.as_slice(), [Event::Message(m)] if m.customer == "USER_ID" && m.text == "hello, world!")
        );
        let ev = messaging(&json(IG_TEXT), "Instagram");
        assert!(
            matches!(ev.as_slice(), [Event::Message(m)] if m.customer == "IGSID" && m.provider_id == "MESSAGE-ID")
        );
        let echo = IG_TEXT.replace("\"text\"", "\"is_echo\":true,\"text\"");
        assert!(matches!(
            messaging(&json(&echo), "Instagram").as_slice(),
            [Event::Echo { .. }]
        ));
    }

    #[test]
    fn the_dashboard_test_payload_does_no_harm() {
        let test = r#"{"object":"whatsapp_business_account","entry":[{"id":"0","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"16505551111","phone_number_id":"123456123"},"contacts":[{"profile":{"name":"test user name"},"wa_id":"16315551181"}],"messages":[{"from":"16315551181","id":"ABGGFlA5Fpa","timestamp":"1504902988","type":"text","text":{"body":"this is a text message"}}]}}]}]}"#;
        let ev = whatsapp(&json(test), &["114896151713920".into()]);
        assert!(matches!(ev.as_slice(), [Event::Ignored { .. }]));
    }
}
