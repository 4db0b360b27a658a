//! Reads TwiML as Twilio does: an XML document whose root is `<Response>`, verbs in
//! order, entities decoded. A document that is not XML, or a verb this stand-in does
//! not know, is an application error (Twilio's 12100 / 12200), never guessed at.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Say {
        text: String,
        voice: Option<String>,
        language: Option<String>,
    },
    Pause,
    Hangup,
    Reject,
    Redirect {
        url: String,
    },
    Gather {
        action: Option<String>,
        input: String,
        language: Option<String>,
        speech_timeout: Option<String>,
        action_on_empty_result: bool,
        says: Vec<Verb>,
    },
}

#[derive(Debug)]
struct Element {
    name: String,
    attrs: HashMap<String, String>,
    children: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Element(Element),
    Text(String),
}

fn decode(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find(';')
            .ok_or_else(|| format!("an unterminated entity in '{s}'"))?;
        let name = &rest[i + 1..i + end];
        let c = match name {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            n if n.starts_with("#x") => u32::from_str_radix(&n[2..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| format!("a bad character reference &{n};"))?,
            n if n.starts_with('#') => n[1..]
                .parse::<u32>()
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| format!("a bad character reference &{n};"))?,
            n => return Err(format!("an unknown entity &{n};")),
        };
        out.push(c);
        rest = &rest[i + end + 1..];
    }
    if rest.contains('<') {
        return Err("a '<' in text".into());
    }
    out.push_str(rest);
    Ok(out)
}

struct Reader<'a> {
    s: &'a str,
    at: usize,
}

impl Reader<'_> {
    fn rest(&self) -> &str {
        &self.s[self.at..]
    }

    fn skip_ws(&mut self) {
        let t = self.rest().len() - self.rest().trim_start().len();
        self.at += t;
    }

    fn skip_until(&mut self, end: &str) -> Result<(), String> {
        let i = self
            .rest()
            .find(end)
            .ok_or_else(|| format!("no closing '{end}'"))?;
        self.at += i + end.len();
        Ok(())
    }

    fn name(&mut self) -> Result<String, String> {
        let n: String = self
            .rest()
            .chars()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.'))
            .collect();
        if n.is_empty() {
            return Err(format!("a name expected at byte {}", self.at));
        }
        self.at += n.len();
        Ok(n)
    }

    /// After `<`: an element with its attributes and children.
    fn element(&mut self) -> Result<Element, String> {
        let name = self.name()?;
        let mut attrs = HashMap::new();
        loop {
            self.skip_ws();
            if self.rest().starts_with("/>") {
                self.at += 2;
                return Ok(Element {
                    name,
                    attrs,
                    children: Vec::new(),
                });
            }
            if self.rest().starts_with('>') {
                self.at += 1;
                break;
            }
            let key = self.name()?;
            self.skip_ws();
            if !self.rest().starts_with('=') {
                return Err(format!("attribute {key} of <{name}> has no value"));
            }
            self.at += 1;
            self.skip_ws();
            let quote = self
                .rest()
                .chars()
                .next()
                .filter(|q| *q == '"' || *q == '\'')
                .ok_or_else(|| format!("attribute {key} of <{name}> is not quoted"))?;
            self.at += 1;
            let end = self
                .rest()
                .find(quote)
                .ok_or_else(|| format!("attribute {key} of <{name}> is not closed"))?;
            let value = decode(&self.rest()[..end])?;
            self.at += end + 1;
            if attrs.insert(key.clone(), value).is_some() {
                return Err(format!("attribute {key} repeated on <{name}>"));
            }
        }
        let mut children = Vec::new();
        loop {
            let text_end = self
                .rest()
                .find('<')
                .ok_or_else(|| format!("<{name}> is not closed"))?;
            let text = &self.rest()[..text_end];
            if !text.trim().is_empty() {
                children.push(Node::Text(decode(text)?));
            }
            self.at += text_end;
            if self.rest().starts_with("<!--") {
                self.skip_until("-->")?;
            } else if self.rest().starts_with("</") {
                self.at += 2;
                let close = self.name()?;
                if close != name {
                    return Err(format!("<{name}> closed by </{close}>"));
                }
                self.skip_ws();
                if !self.rest().starts_with('>') {
                    return Err(format!("</{close}> is not closed"));
                }
                self.at += 1;
                return Ok(Element {
                    name,
                    attrs,
                    children,
                });
            } else {
                self.at += 1;
                children.push(Node::Element(self.element()?));
            }
        }
    }
}

fn text_of(e: &Element) -> Result<String, String> {
    let mut out = String::new();
    for c in &e.children {
        match c {
            Node::Text(t) => out.push_str(t),
            Node::Element(inner) => {
                return Err(format!("<{}> inside <{}>", inner.name, e.name));
            }
        }
    }
    Ok(out.trim().to_string())
}

fn verb(e: &Element) -> Result<Verb, String> {
    let attr = |k: &str| e.attrs.get(k).cloned();
    Ok(match e.name.as_str() {
        "Say" => Verb::Say {
            text: text_of(e)?,
            voice: attr("voice"),
            language: attr("language"),
        },
        "Pause" => Verb::Pause,
        "Hangup" => Verb::Hangup,
        "Reject" => Verb::Reject,
        "Redirect" => Verb::Redirect { url: text_of(e)? },
        "Gather" => {
            let mut says = Vec::new();
            for c in &e.children {
                match c {
                    Node::Element(inner) if matches!(inner.name.as_str(), "Say" | "Pause") => {
                        says.push(verb(inner)?)
                    }
                    Node::Element(inner) => {
                        return Err(format!("<{}> is not allowed inside <Gather>", inner.name));
                    }
                    Node::Text(_) => return Err("text directly inside <Gather>".into()),
                }
            }
            Verb::Gather {
                action: attr("action"),
                input: attr("input").unwrap_or_else(|| "dtmf".into()),
                language: attr("language"),
                speech_timeout: attr("speechTimeout"),
                action_on_empty_result: attr("actionOnEmptyResult").as_deref() == Some("true"),
                says,
            }
        }
        other => return Err(format!("unknown verb <{other}>")),
    })
}

/// The verbs of a TwiML document, in order.
pub fn read(doc: &str) -> Result<Vec<Verb>, String> {
    let mut r = Reader { s: doc, at: 0 };
    r.skip_ws();
    if r.rest().starts_with("<?xml") {
        r.skip_until("?>")?;
    }
    loop {
        r.skip_ws();
        if r.rest().starts_with("<!--") {
            r.skip_until("-->")?;
        } else {
            break;
        }
    }
    if !r.rest().starts_with('<') {
        return Err("not an XML document".into());
    }
    r.at += 1;
    let root = r.element()?;
    r.skip_ws();
    if !r.rest().is_empty() {
        return Err("content after the root element".into());
    }
    if root.name != "Response" {
        return Err(format!("the root is <{}>, not <Response>", root.name));
    }
    let mut verbs = Vec::new();
    for c in &root.children {
        match c {
            Node::Element(e) => verbs.push(verb(e)?),
            Node::Text(_) => return Err("text directly inside <Response>".into()),
        }
    }
    Ok(verbs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_verbs_and_decodes_entities_so_escaped_markup_is_only_said() {
        let doc = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Gather input=\"speech\" \
                   action=\"https://h/x?t=1&amp;s=1\" actionOnEmptyResult=\"true\"><Say \
                   voice='Polly.Joanna'>You said &lt;Hangup/&gt; &amp; more</Say></Gather>\
                   <Redirect method=\"POST\">https://h/x?t=1</Redirect><Hangup/></Response>";
        let v = read(doc).unwrap();
        assert_eq!(v.len(), 3);
        match &v[0] {
            Verb::Gather {
                action,
                says,
                action_on_empty_result,
                ..
            } => {
                assert_eq!(action.as_deref(), Some("https://h/x?t=1&s=1"));
                assert!(action_on_empty_result);
                assert_eq!(
                    says[0],
                    Verb::Say {
                        text: "You said <Hangup/> & more".into(),
                        voice: Some("Polly.Joanna".into()),
                        language: None
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(v[2], Verb::Hangup);
    }

    #[test]
    fn refuses_what_twilio_would_not_run() {
        assert!(read("<Response><Say>hi</Response>").is_err());
        assert!(read("<Response><Say>a < b</Say></Response>").is_err());
        assert!(read("<Reply/>").is_err());
        assert!(read("<Response><Dance/></Response>").is_err());
        assert!(read("hello").is_err());
    }
}
