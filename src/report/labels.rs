//! The report's words in Finnish, Swedish and English, and its numbers as each language writes
//! them; item, code and area names from the instruments and code lists.

use super::data::Area;
use crate::marts::periods::PeriodType;
use crate::schema::Catalog;

/// The languages a report is written in.
pub const LANGUAGES: [&str; 3] = ["fi", "sv", "en"];

pub struct Labels {
    pub lang: &'static str,
    catalog: &'static Catalog,
}

/// key → (fi, sv, en)
const WORDS: &[(&str, &str, &str, &str)] = &[
    ("summary", "Tiivistelmä", "Sammanfattning", "Summary"),
    ("responses", "Vastauksia", "Svar", "Responses"),
    ("nation", "Koko maa", "Hela landet", "Whole country"),
    (
        "nps",
        "Suositteluindeksi (NPS)",
        "Rekommendationsindex (NPS)",
        "Net Promoter Score (NPS)",
    ),
    (
        "mean_recommend",
        "Suosittelun keskiarvo (0–10)",
        "Rekommendationens medelvärde (0–10)",
        "Mean recommendation (0–10)",
    ),
    (
        "nps_explained",
        "NPS = suosittelijoiden (9–10) osuus miinus arvostelijoiden (0–6) osuus, asteikolla −100…100. Keskiarvo 0–10 on eri luku, ei NPS.",
        "NPS = andelen rekommendatörer (9–10) minus andelen kritiker (0–6), på skalan −100…100. Medelvärdet 0–10 är ett annat tal, inte NPS.",
        "NPS = the share of promoters (9–10) minus the share of detractors (0–6), on −100…100. The mean of 0–10 is another figure, not an NPS.",
    ),
    (
        "ci95",
        "95 %:n luottamusväli",
        "95 % konfidensintervall",
        "95% interval",
    ),
    (
        "compared_with_nation",
        "verrattuna koko maahan",
        "jämfört med hela landet",
        "compared with the whole country",
    ),
    (
        "statements",
        "Väittämät: samaa mieltä olevien osuus",
        "Påståenden: andel som instämmer",
        "Statements: share agreeing",
    ),
    (
        "statements_table",
        "Samaa mieltä (4–5) olevien osuus vastanneista, alue ja koko maa",
        "Andel som instämmer (4–5) av de svarande, området och hela landet",
        "Share agreeing (4–5) of those answering, area and whole country",
    ),
    (
        "statements_chart",
        "Samaa mieltä olevien osuus väittämittäin",
        "Andel som instämmer per påstående",
        "Share agreeing by statement",
    ),
    (
        "statements_desc",
        "Pisteet: alueen osuus ja sen 95 %:n luottamusväli; vinoneliöt: koko maa. Luvut ovat taulukossa kuvan alla.",
        "Punkter: områdets andel med 95 % konfidensintervall; romber: hela landet. Siffrorna finns i tabellen under figuren.",
        "Dots: the area's share with its 95% interval; diamonds: the whole country. The figures are in the table below the chart.",
    ),
    ("statement", "Väittämä", "Påstående", "Statement"),
    ("share_agree", "Samaa mieltä", "Instämmer", "Agreeing"),
    ("adjusted", "Vakioitu", "Standardiserad", "Adjusted"),
    (
        "adjusted_difference",
        "Vakioitu ero",
        "Standardiserad skillnad",
        "Adjusted difference",
    ),
    (
        "adjusted_explained",
        "Vakioitu: alueen luku, jos sen vastaajat jakautuisivat kanavan, vastaajan, ikäryhmän ja kielen mukaan kuten koko maassa (mallin arvio; vähintään 30 vastauksen luvuille).",
        "Standardiserad: områdets tal om dess svarande fördelade sig enligt kanal, svarande, åldersgrupp och språk som i hela landet (en modells uppskattning; för tal med minst 30 svar).",
        "Adjusted: the area's figure had its respondents been spread over channel, respondent, age group and language as in the whole country (a model's estimate; for figures of at least 30 answers).",
    ),
    (
        "difference",
        "Ero koko maahan",
        "Skillnad mot hela landet",
        "Difference from the country",
    ),
    (
        "no_statements",
        "Ei väittämiä tällä kaudella.",
        "Inga påståenden under perioden.",
        "No statements in this period.",
    ),
    (
        "higher",
        "merkitsevästi korkeampi",
        "signifikant högre",
        "significantly higher",
    ),
    (
        "lower",
        "merkitsevästi matalampi",
        "signifikant lägre",
        "significantly lower",
    ),
    (
        "no_difference",
        "ei merkitsevää eroa",
        "ingen signifikant skillnad",
        "no significant difference",
    ),
    ("trend", "Kehitys", "Utveckling", "Trend"),
    (
        "trend_chart",
        "Suositteluindeksi (NPS) kuudella viimeisellä kaudella",
        "Rekommendationsindex (NPS) under de sex senaste perioderna",
        "NPS over the last six periods",
    ),
    (
        "trend_desc",
        "Yhtenäinen viiva ja pisteet: alue; katkoviiva ja vinoneliöt: koko maa. Luvut ovat taulukossa kuvan alla.",
        "Heldragen linje och punkter: området; streckad linje och romber: hela landet. Siffrorna finns i tabellen under figuren.",
        "Solid line and dots: the area; dashed line and diamonds: the whole country. The figures are in the table below the chart.",
    ),
    (
        "trend_table",
        "Suositteluindeksi (NPS) kausittain",
        "Rekommendationsindex (NPS) per period",
        "NPS by period",
    ),
    ("coverage", "Kattavuus", "Täckning", "Coverage"),
    ("channel", "Vastauskanava", "Svarskanal", "Channel"),
    ("respondent_role", "Vastaaja", "Svarande", "Respondent"),
    (
        "selections",
        "Monivalintakysymykset",
        "Flervalsfrågor",
        "Multiple-choice items",
    ),
    ("category", "Luokka", "Kategori", "Category"),
    ("share", "Osuus", "Andel", "Share"),
    ("suppressed", "salattu", "skyddad", "suppressed"),
    ("no_answers", "ei vastauksia", "inga svar", "no answers"),
    ("legend", "Merkinnät", "Teckenförklaring", "Legend"),
    (
        "primary",
        "alle {k} vastausta",
        "färre än {k} svar",
        "fewer than {k} answers",
    ),
    (
        "secondary",
        "piilotettu, jotta toista salattua lukua ei voisi päätellä",
        "dold så att en annan skyddad siffra inte kan räknas ut",
        "hidden so that another figure cannot be worked out",
    ),
    (
        "low_reliability",
        "alle 30 vastausta: tulkitse varoen",
        "färre än 30 svar: tolka med försiktighet",
        "fewer than 30 answers: interpret with care",
    ),
    (
        "significance",
        "ero koko maahan on tilastollisesti merkitsevä (5 %:n taso)",
        "skillnaden mot hela landet är statistiskt signifikant (5 % nivå)",
        "the difference from the country is statistically significant (5% level)",
    ),
    ("method", "Menetelmä", "Metod", "Method"),
    (
        "method_scales",
        "Väittämät asteikolla 1–5; samaa mieltä = 4–5. Suosittelu asteikolla 0–10.",
        "Påståenden på skalan 1–5; instämmer = 4–5. Rekommendation på skalan 0–10.",
        "Statements on a 1–5 scale; agreeing = 4–5. Recommendation on a 0–10 scale.",
    ),
    (
        "method_denominator",
        "Osuuksien nimittäjässä ovat asteikolla vastanneet; \"en osaa sanoa\", \"ei koske minua\" ja vastaamatta jättäneet eivät ole.",
        "I andelarnas nämnare ingår de som svarat på skalan; \"vet ej\", \"gäller inte mig\" och obesvarade ingår inte.",
        "Shares are of those answering on the scale; \"can't say\", \"not applicable\" and no answer are left out of the denominator.",
    ),
    (
        "method_test",
        "Aluetta verrataan muuhun maahan: osuudet kahden osuuden z-testillä, NPS z-testillä, luottamusvälit Wilsonin (osuudet) ja normaalijakauman (NPS) mukaan, 95 %.",
        "Området jämförs med resten av landet: andelar med z-test för två andelar, NPS med z-test, intervall enligt Wilson (andelar) och normalfördelningen (NPS), 95 %.",
        "The area is compared with the rest of the country: shares by a two-proportion z-test, NPS by a z-test; intervals Wilson (shares) and normal (NPS), 95%.",
    ),
    (
        "method_k",
        "Luku salataan, jos se perustuu alle {k} vastaukseen, ja lisäksi luvut, joista salattu luku voitaisiin päätellä.",
        "En siffra skyddas om den bygger på färre än {k} svar, och därtill siffror som den skyddade skulle kunna räknas ut ur.",
        "A figure from fewer than {k} answers is suppressed, and so are the figures it could be worked out from.",
    ),
    (
        "method_version",
        "Tiedot: tietovaraston kirjausrivi {seq} ({as_of}).",
        "Data: lagrets loggrad {seq} ({as_of}).",
        "Data: the warehouse's ledger row {seq} ({as_of}).",
    ),
    (
        "footer",
        "Tehty palautteella (palaute) julkaistuista koosteista; raakavastauksia tai avovastauksia ei käytetty.",
        "Gjord med palaute ur de publicerade sammanställningarna; inga råsvar eller fritextsvar användes.",
        "Made by palaute from the published marts; no raw or open-text answers were used.",
    ),
    ("index", "Raportit", "Rapporter", "Reports"),
];

impl Labels {
    pub fn new(lang: &str) -> Result<Labels, String> {
        let lang = LANGUAGES
            .into_iter()
            .find(|l| *l == lang)
            .ok_or_else(|| format!("--language {lang}: one of fi, sv, en"))?;
        Ok(Labels {
            lang,
            catalog: Catalog::embedded(),
        })
    }

    fn pick<'a>(&self, fi: &'a str, sv: &'a str, en: &'a str) -> &'a str {
        let s = match self.lang {
            "sv" => sv,
            "en" => en,
            _ => fi,
        };
        if s.is_empty() { fi } else { s }
    }

    pub fn t(&self, key: &str) -> String {
        WORDS
            .iter()
            .find(|w| w.0 == key)
            .map(|w| self.pick(w.1, w.2, w.3).to_string())
            .unwrap_or_else(|| key.to_string())
    }

    pub fn title(&self, area: &str) -> String {
        match self.lang {
            "sv" => format!("Kundrespons: {area}"),
            "en" => format!("Client feedback: {area}"),
            _ => format!("Asiakaspalaute: {area}"),
        }
    }

    pub fn period_name(&self, t: PeriodType) -> &'static str {
        match (t, self.lang) {
            (PeriodType::Month, "sv") => "Månad",
            (PeriodType::Month, "en") => "Month",
            (PeriodType::Month, _) => "Kuukausi",
            (PeriodType::Bimonth, "sv") => "Tvåmånadersperiod",
            (PeriodType::Bimonth, "en") => "Two-month period",
            (PeriodType::Bimonth, _) => "Kahden kuukauden jakso",
            (PeriodType::Quarter, "sv") => "Kvartal",
            (PeriodType::Quarter, "en") => "Quarter",
            (PeriodType::Quarter, _) => "Neljännes",
            (PeriodType::Half, "sv") => "Halvår",
            (PeriodType::Half, "en") => "Half-year",
            (PeriodType::Half, _) => "Puolivuotis",
            (PeriodType::Year, "sv") => "År",
            (PeriodType::Year, "en") => "Year",
            (PeriodType::Year, _) => "Vuosi",
        }
    }

    pub fn area_name(&self, a: &Area) -> String {
        let m = &self.catalog.municipalities;
        let name = match a.level.as_str() {
            "county" => m.county_name(&a.code).map(str::to_string),
            "municipality" => m
                .years()
                .iter()
                .rev()
                .flat_map(|y| m.municipality_codes(*y))
                .find(|x| x.code == a.code)
                .map(|x| {
                    if self.lang == "sv" && !x.name_sv.is_empty() {
                        x.name_sv.clone()
                    } else {
                        x.name_fi.clone()
                    }
                }),
            "cooperation_area" => Some(format!(
                "{} {}",
                self.pick("Yhteistyöalue", "Samarbetsområde", "Cooperation area"),
                a.code
            )),
            _ => None,
        };
        name.unwrap_or_else(|| a.code.clone())
    }

    pub fn instrument_name(&self, code: &str) -> String {
        self.catalog
            .instruments
            .get(code)
            .map(|i| self.pick(&i.title.fi, &i.title.sv, &i.title.en).to_string())
            .unwrap_or_else(|| code.to_string())
    }

    pub fn item_label(&self, instrument: &str, item: &str) -> String {
        self.catalog
            .instruments
            .get(instrument)
            .and_then(|i| i.items.get(item))
            .map(|it| {
                self.pick(&it.labels.fi, &it.labels.sv, &it.labels.en)
                    .to_string()
            })
            .unwrap_or_else(|| item.to_string())
    }

    pub fn option_label(&self, instrument: &str, item: &str, option: &str) -> String {
        self.catalog
            .instruments
            .get(instrument)
            .and_then(|i| i.items.get(item))
            .and_then(|it| it.options.get(option))
            .map(|l| self.pick(&l.fi, &l.sv, &l.en).to_string())
            .unwrap_or_else(|| option.to_string())
    }

    pub fn code_label(&self, list: &str, code: &str) -> String {
        if code == "unknown" {
            return self.pick("ei tiedossa", "okänd", "not known").to_string();
        }
        self.catalog
            .lists
            .get(list)
            .and_then(|l| l.entries.iter().find(|e| e.code == code))
            .map(|e| {
                self.pick(&e.labels.fi, &e.labels.sv, &e.labels.en)
                    .to_string()
            })
            .unwrap_or_else(|| code.to_string())
    }

    fn comma(&self) -> bool {
        self.lang != "en"
    }

    pub fn decimal(&self, v: f64, places: usize) -> String {
        let s = format!("{v:.places$}");
        if self.comma() { s.replace('.', ",") } else { s }
    }

    pub fn percent(&self, v: f64) -> String {
        let s = self.decimal(v * 100.0, 1);
        if self.comma() {
            format!("{s} %")
        } else {
            format!("{s}%")
        }
    }

    pub fn percent_short(&self, v: f64) -> String {
        let s = format!("{:.0}", v * 100.0);
        if self.comma() {
            format!("{s} %")
        } else {
            format!("{s}%")
        }
    }

    pub fn signed(&self, v: f64) -> String {
        let r = v.round();
        if r > 0.0 {
            format!("+{r:.0}")
        } else if r < 0.0 {
            format!("−{:.0}", -r)
        } else {
            "0".into()
        }
    }

    pub fn integer(&self, v: f64) -> String {
        let n = v.round() as i64;
        let digits = n.abs().to_string();
        let sep = if self.comma() { '\u{a0}' } else { ',' };
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(sep);
            }
            out.push(c);
        }
        if n < 0 { format!("−{out}") } else { out }
    }
}
