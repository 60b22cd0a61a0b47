//! Paper forms: `palaute template` writes the keying template and its pipeline; staff fill it in;
//! `palaute run` loads it strictly.

use calamine::{Reader, open_workbook_auto};

use crate::common::{Fixture, palaute, s};

/// Rows keyed by staff, by column code; every other column is left empty.
fn rows() -> Vec<Vec<(&'static str, &'static str)>> {
    vec![
        vec![
            ("form_id", "P-001"),
            ("date", "3.6.2024"),
            ("municipality", "Lahti"),
            ("respondent_role", "client"),
            ("age_group", "65-74"),
            ("activities.group", "x"),
            ("activities.meal", "X"),
            ("everyday_support", "5"),
            ("recommend", "10"),
            ("good", "Mukavat ohjaajat, puh 040 765 4321"),
        ],
        vec![
            ("form_id", "P-002"),
            ("date", "4.6.2024"),
            ("municipality", "398"),
            ("everyday_support", "eos"),
            ("recommend", "7"),
        ],
        // mistyped: 6 on a 1–5 scale
        vec![
            ("form_id", "P-003"),
            ("date", "4.6.2024"),
            ("municipality", "398"),
            ("everyday_support", "6"),
        ],
        // a label is not what the template allows
        vec![
            ("form_id", "P-004"),
            ("date", "5.6.2024"),
            ("municipality", "398"),
            ("everyday_support", "Täysin samaa mieltä"),
        ],
        // an option column holds something other than x
        vec![
            ("form_id", "P-005"),
            ("date", "5.6.2024"),
            ("municipality", "398"),
            ("activities.peer", "kyllä"),
        ],
    ]
}

fn check_loaded(f: &Fixture) {
    let r = f.sql("SELECT source_row, channel, respondent_role, age_group, nps FROM responses ORDER BY source_row");
    assert_eq!(r.len(), 2, "{r:?}");
    for row in &r {
        assert_eq!(s(row, "channel"), Some("paper"));
    }
    // the header takes two rows: the first form is on row 3
    assert_eq!(r[0]["source_row"].as_i64(), Some(3));
    assert_eq!(s(&r[0], "age_group"), Some("65-74"));
    assert_eq!(r[1]["nps"].as_i64(), Some(7));
    let sel = f
        .sql("SELECT option_code FROM answers WHERE item_code = 'activities' ORDER BY option_code");
    let opts: Vec<&str> = sel.iter().map(|r| s(r, "option_code").unwrap()).collect();
    assert_eq!(opts, vec!["group", "meal"]);
    let q = f.sql("SELECT source_row, reason_codes, message FROM quarantine ORDER BY source_row");
    assert_eq!(q.len(), 3, "{q:?}");
    assert!(s(&q[0], "reason_codes").unwrap().contains("out_of_range"));
    assert!(s(&q[1], "reason_codes").unwrap().contains("invalid_value"));
    assert!(s(&q[2], "reason_codes").unwrap().contains("invalid_option"));
    for (row, want) in q.iter().zip([
        "allowed: 1–5, eos, ei koske",
        "allowed: 1–5, eos, ei koske",
        "allowed: x or empty",
    ]) {
        let m = s(row, "message").unwrap();
        assert!(m.contains(want), "{m}");
    }
    assert_eq!(
        s(&f.sql("SELECT text FROM comments")[0], "text"),
        Some("Mukavat ohjaajat, puh [phone]")
    );
}

#[test]
fn a_csv_template_filled_in_loads_strictly() {
    let f = Fixture::new();
    let tpl = f.path("paper/keyed_june.csv");
    std::fs::create_dir_all(tpl.parent().unwrap()).unwrap();
    // a file name that is not a valid pipeline name gives a valid one
    let pipeline = f.path("paper forms (Hervanta).yaml");
    let r = palaute(
        &[
            "template",
            "local_everyday",
            "--format",
            "csv",
            "--output",
            tpl.to_str().unwrap(),
            "--pipeline",
            pipeline.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // staff add rows below the two header rows, keeping the template's `;` and columns
    let text = std::fs::read_to_string(&tpl).unwrap();
    let codes: Vec<String> = text
        .lines()
        .nth(1)
        .unwrap()
        .split(';')
        .map(str::to_string)
        .collect();
    assert!(
        codes.contains(&"activities.group".to_string()) && !codes.contains(&"channel".to_string())
    );
    let mut out = text.clone();
    for row in rows() {
        let cells: Vec<&str> = codes
            .iter()
            .map(|c| {
                row.iter()
                    .find(|(k, _)| k == c)
                    .map(|(_, v)| *v)
                    .unwrap_or("")
            })
            .collect();
        out.push_str(&cells.join(";"));
        out.push('\n');
    }
    std::fs::write(&tpl, out).unwrap();
    assert!(
        std::fs::read_to_string(&pipeline)
            .unwrap()
            .contains("name: paper_forms__Hervanta_\n")
    );
    let r = f.run(&pipeline);
    assert_eq!(
        r.code, 3,
        "3 of 5 rows quarantined is over the default limit: {}",
        r.stderr
    );
    // the limit is the pipeline's to set
    let y = std::fs::read_to_string(&pipeline).unwrap() + "quality:\n  max_quarantined_pct: 80\n";
    std::fs::write(&pipeline, y).unwrap();
    let r = f.run(&pipeline);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    check_loaded(&f);
    // a rerun loads nothing twice
    assert_eq!(f.run(&pipeline).code, 0);
    assert_eq!(f.count("responses"), 2);
    assert_eq!(f.count("quarantine"), 3);
}

#[test]
fn an_xlsx_template_has_drop_downs_and_loads_strictly() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.path("paper")).unwrap();
    let tpl = f.path("template.xlsx");
    let pipeline = f.path("paper_forms.yaml");
    let r = palaute(
        &[
            "template",
            "local_everyday",
            "--output",
            tpl.to_str().unwrap(),
            "--pipeline",
            pipeline.to_str().unwrap(),
            "--language",
            "sv",
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut wb = open_workbook_auto(&tpl).unwrap();
    assert_eq!(wb.sheet_names(), vec!["Blanketter", "Tillåtna värden"]);
    let range = wb.worksheet_range("Blanketter").unwrap();
    let header: Vec<String> = range
        .rows()
        .next()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let codes: Vec<String> = range
        .rows()
        .nth(1)
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert!(
        header
            .iter()
            .any(|h| h == "Jag fick stöd i min vardag. (1–5, eos, ei koske)"),
        "{header:?}"
    );
    // the workbook carries a list validation with the allowed values
    let xml = {
        let file = std::fs::File::open(&tpl).unwrap();
        let mut z = zip::ZipArchive::new(file).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut z.by_name("xl/worksheets/sheet1.xml").unwrap(), &mut s)
            .unwrap();
        s
    };
    assert!(
        xml.contains("dataValidation") && xml.contains("\"1,2,3,4,5,eos,ei koske\""),
        "{xml}"
    );
    // staff fill the template in a spreadsheet program
    let mut out = rust_xlsxwriter::Workbook::new();
    let ws = out.add_worksheet();
    for (c, (h, code)) in header.iter().zip(&codes).enumerate() {
        ws.write_string(0, c as u16, h).unwrap();
        ws.write_string(1, c as u16, code).unwrap();
    }
    for (r, row) in rows().iter().enumerate() {
        for (k, v) in row {
            let c = codes.iter().position(|x| x == k).unwrap();
            match v.parse::<f64>() {
                Ok(n) => ws.write_number(r as u32 + 2, c as u16, n).unwrap(),
                Err(_) => ws.write_string(r as u32 + 2, c as u16, *v).unwrap(),
            };
        }
    }
    out.save(f.path("paper/keyed_june.xlsx")).unwrap();
    let y = std::fs::read_to_string(&pipeline).unwrap() + "quality:\n  max_quarantined_pct: 80\n";
    std::fs::write(&pipeline, y).unwrap();
    let r = f.run(&pipeline);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    check_loaded(&f);
}

#[test]
fn an_unknown_instrument_or_language_is_a_configuration_error() {
    let r = palaute(&["template", "no_such", "--output", "/tmp/x.csv"], &[]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("unknown instrument 'no_such'"),
        "{}",
        r.stderr
    );
    let r = palaute(
        &[
            "template",
            "thl_national",
            "--language",
            "de",
            "--output",
            "/tmp/x.csv",
        ],
        &[],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("use fi, sv or en"), "{}", r.stderr);
}

#[test]
fn a_template_that_cannot_be_written_is_an_environment_error_naming_the_file_and_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    // a file where the template's folder should be
    std::fs::write(dir.path().join("taken"), "").unwrap();
    for (format, name) in [("csv", "t.csv"), ("xlsx", "t.xlsx")] {
        let out = dir.path().join("taken").join(name);
        let r = palaute(
            &[
                "template",
                "thl_national",
                "--format",
                format,
                "--output",
                out.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(r.code, 4, "{format}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(&out.display().to_string()),
            "{format}: {}",
            r.stderr
        );
        // the cause underneath, kept as the error's source
        assert!(r.stderr.contains("os error"), "{format}: {}", r.stderr);
        assert!(!out.exists());
    }
}
