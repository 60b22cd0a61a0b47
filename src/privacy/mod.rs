//! Privacy at load (DESIGN.md §5): only mapped fields enter the warehouse (the normalizer reads
//! nothing else), birth years become age groups, and open text is scrubbed here before it is
//! stored. Errors and logs name files, rows and columns, never answer text.

#[cfg(test)]
mod corpus;
pub mod disclosure;
pub mod keys;
pub mod scrub;

pub use scrub::{Scrubbed, Scrubber};

/// Columns survey tools use for who answered: the respondent's name and e-mail address
/// (Microsoft Forms' `Email`, `Name`; Qualtrics' `Recipient…`), LimeSurvey's `token`, `ipaddr`
/// and `refurl`, Qualtrics' `IPAddress` and location. A mapping may not name them, so they can
/// never enter the warehouse, whatever a pipeline says.
pub const IDENTIFIER_COLUMNS: [&str; 20] = [
    "email",
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
