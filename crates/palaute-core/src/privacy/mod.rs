//! Privacy at load (docs/privacy.md): only mapped fields enter the warehouse (the normalizer reads
//! nothing else), birth years become age groups, and open text is scrubbed here before it is
//! stored. Errors and logs name files, rows and columns, never answer text.

#[cfg(test)]
mod corpus;
pub mod keys;
pub mod scrub;

pub use scrub::{Scrubbed, Scrubber};

/// Columns survey tools use for who answered: the respondent's name and e-mail address
/// (Microsoft Forms' `Email`, `Name`; Qualtrics' `Recipient…`), LimeSurvey's `token`, `ipaddr`
/// and `refurl`, Qualtrics' `IPAddress` and location. A mapping may not name them, so they can
/// never enter the warehouse, whatever a pipeline says.
pub const IDENTIFIER_COLUMNS: [&str; 21] = [
    "email",
    "emailaddress",
    "e-mail",
    "sähköposti",
    "e-post",
    "name",
    "nimi",
    "namn",
    "token",
    "ipaddr",
    "ipaddress",
    "ip address",
    "ip-osoite",
    "refurl",
    "recipientemail",
    "recipientfirstname",
    "recipientlastname",
    "externalreference",
    "externaldatareference",
    "locationlatitude",
    "locationlongitude",
];

/// Is this source column one that identifies a respondent (see [`IDENTIFIER_COLUMNS`])?
pub fn is_identifier_column(name: &str) -> bool {
    let n = name.trim().to_lowercase();
    IDENTIFIER_COLUMNS.contains(&n.as_str())
}

/// What a value that must not identify anyone looks like when it does: an e-mail address, a
/// phone number, a henkilötunnus or an IP address (the value-level guard of the dimension
/// columns a pipeline maps freely: org unit, local area, service).
pub struct IdentifierGuard {
    scrubber: Scrubber,
}

impl Default for IdentifierGuard {
    fn default() -> Self {
        use crate::config::PiiKind;
        IdentifierGuard {
            scrubber: Scrubber::new(&[PiiKind::Email, PiiKind::Phone, PiiKind::Hetu]),
        }
    }
}

impl IdentifierGuard {
    /// The kind of personal datum `value` holds, if any.
    pub fn kind_of(&self, value: &str) -> Option<&'static str> {
        let v = value.trim();
        let ipv4 = v.split('.').count() == 4
            && v.split('.')
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
        let ipv6 = v.matches(':').count() >= 2
            && v.chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        if ipv4 || ipv6 {
            return Some("an IP address");
        }
        let s = self.scrubber.scrub(v);
        match s.kinds.split(',').next() {
            Some("email") => Some("an e-mail address"),
            Some("phone") => Some("a phone number"),
            Some("hetu") => Some("a henkilötunnus"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn identifying_values_are_told_from_codes() {
        let g = super::IdentifierGuard::default();
        assert_eq!(g.kind_of("maija@example.fi"), Some("an e-mail address"));
        assert_eq!(g.kind_of("192.0.2.7"), Some("an IP address"));
        assert_eq!(g.kind_of("2001:db8::1"), Some("an IP address"));
        assert_eq!(g.kind_of("040 123 4567"), Some("a phone number"));
        assert_eq!(g.kind_of("131052-308T"), Some("a henkilötunnus"));
        for code in [
            "K123", "sote-3", "Pirkkala", "12", "A.1.2", "2024-03", "10:30",
        ] {
            assert_eq!(g.kind_of(code), None, "{code}");
        }
    }
}
