//! Property-based fuzzing of the export readers: arbitrary bytes and mangled records never
//! make a reader panic, and every row read is either loaded or quarantined with a reason.
//! Case counts are bounded so the whole file runs in seconds.

use crmcube_ingest::read::{read_file, FileStage};
use crmcube_ingest::{CsvOptions, FileFormat};
use crmcube_model::{EntitySpec, ExportContract};
use proptest::prelude::*;
use std::path::Path;

fn spec(entity: &str) -> EntitySpec {
    ExportContract::builtin()
        .unwrap()
        .entity(entity)
        .unwrap()
        .clone()
}

fn read_bytes(bytes: &[u8], name: &str, entity: &str) -> crmcube_model::Result<FileStage> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let format = FileFormat::from_path(Path::new(name)).unwrap();
    read_file(&path, format, entity, &spec(entity), &CsvOptions::default())
}

/// Every row read is loaded or quarantined, and every quarantined row says why.
fn accounted(stage: &FileStage) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        stage.batch.num_rows() as u64 + stage.rejects.len() as u64,
        stage.read
    );
    prop_assert_eq!(stage.lines.len(), stage.batch.num_rows());
    for r in &stage.rejects {
        prop_assert!(!r.reason.trim().is_empty());
        prop_assert!(r.line >= 1);
    }
    Ok(())
}

/// Whatever the outcome, a failure is an error value with a message naming the file.
fn check_outcome(out: crmcube_model::Result<FileStage>, name: &str) -> Result<(), TestCaseError> {
    match out {
        Ok(stage) => accounted(&stage),
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(msg.contains(name), "error does not name the file: {}", msg);
            Ok(())
        }
    }
}

const HEADER: &str = "order_id,line_no,product_id,quantity,unit_price,discount,returned\n";

fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
    // Bytes biased towards CSV structure: delimiters, quotes, line ends, digits.
    let byte = prop_oneof![
        4 => prop::sample::select(b",\"\n\r0123456789.-abcOPtf ".to_vec()),
        1 => any::<u8>(),
    ];
    prop::collection::vec(byte, 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn csv_arbitrary_bytes(body in csv_bytes(), with_header in any::<bool>()) {
        let mut bytes = if with_header { HEADER.as_bytes().to_vec() } else { Vec::new() };
        bytes.extend_from_slice(&body);
        check_outcome(read_bytes(&bytes, "order_lines.csv", "order_lines"), "order_lines.csv")?;
    }

    #[test]
    fn jsonl_arbitrary_bytes(body in prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(b"{}[]\":,\n 0123456789.-eE truefalsnul\\order_id".to_vec()),
            1 => any::<u8>(),
        ], 0..400)) {
        check_outcome(read_bytes(&body, "order_lines.jsonl", "order_lines"), "order_lines.jsonl")?;
    }

    #[test]
    fn parquet_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..300), magic in any::<bool>()) {
        let mut bytes = body;
        if magic {
            let mut framed = b"PAR1".to_vec();
            framed.extend_from_slice(&bytes);
            framed.extend_from_slice(b"PAR1");
            bytes = framed;
        }
        check_outcome(read_bytes(&bytes, "order_lines.parquet", "order_lines"), "order_lines.parquet")?;
    }

    #[test]
    fn parquet_with_flipped_bytes(flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let mut bytes = valid_parquet();
        for (i, b) in flips {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        check_outcome(read_bytes(&bytes, "order_lines.parquet", "order_lines"), "order_lines.parquet")?;
    }
}

/// A field of an order line: valid, or invalid for a known reason.
#[derive(Debug, Clone)]
struct Field {
    text: String,
    valid: bool,
}

fn field(valid: BoxedStrategy<String>, invalid: BoxedStrategy<String>) -> BoxedStrategy<Field> {
    prop_oneof![
        3 => valid.prop_map(|text| Field { text, valid: true }),
        1 => invalid.prop_map(|text| Field { text, valid: false }),
    ]
    .boxed()
}

fn order_line() -> impl Strategy<Value = Vec<Field>> {
    let s = |r: &str| r.to_string();
    let id = "[A-Z][A-Za-z0-9 ,\"\n]{0,12}".prop_map(|t| t).boxed();
    let long_id = "[a-z]{33,40}".prop_map(|t| t).boxed();
    let int = |lo: i64, hi: i64| (lo..=hi).prop_map(|v| v.to_string()).boxed();
    let not_int = prop_oneof![
        Just(s("two")),
        Just(s("1.5")),
        Just(s("1,000")),
        Just(s("0")),
        Just(s("")),
        "[a-z]{1,5}".prop_map(|t| t),
    ]
    .boxed();
    let money = (0u32..100_000, 0u32..100)
        .prop_map(|(a, c)| format!("{a}.{c:02}"))
        .boxed();
    let not_money = prop_oneof![
        Just(s("1.234")),
        Just(s("NaN")),
        Just(s("-5.00")),
        Just(s("1e3")),
        Just(s("")),
    ]
    .boxed();
    let boolean = prop::sample::select(vec!["true", "false", "Y", "n", "1", "0"])
        .prop_map(s)
        .boxed();
    let not_bool = prop::sample::select(vec!["maybe", "2", "", "truee"])
        .prop_map(s)
        .boxed();
    (
        field(id.clone(), Just(String::new()).boxed()),
        field(int(1, 50), not_int.clone()),
        field(id, long_id),
        field(int(1, 10_000), not_int),
        field(money, not_money),
        field(Just(s("0.00")).boxed(), Just(s("x")).boxed()),
        field(boolean, not_bool),
    )
        .prop_map(|(a, b, c, d, e, f, g)| vec![a, b, c, d, e, f, g])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Well-quoted CSV and JSON Lines of valid and invalid fields: exactly the rows whose
    /// fields are all valid load, the others are quarantined naming their first bad column.
    #[test]
    fn mangled_records_load_or_are_quarantined(rows in prop::collection::vec(order_line(), 0..40)) {
        let names = ["order_id", "line_no", "product_id", "quantity", "unit_price", "discount", "returned"];
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(names).unwrap();
        let mut jsonl = String::new();
        for r in &rows {
            w.write_record(r.iter().map(|f| f.text.as_str())).unwrap();
            let obj: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .zip(r)
                .map(|(n, f)| (n.to_string(), serde_json::Value::String(f.text.clone())))
                .collect();
            jsonl.push_str(&serde_json::Value::Object(obj).to_string());
            jsonl.push('\n');
        }
        let csv_bytes = w.into_inner().unwrap();
        let expected_valid = rows.iter().filter(|r| r.iter().all(|f| f.valid)).count();
        let expected_columns: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.iter().position(|f| !f.valid).map(|i| names[i]))
            .collect();
        for (bytes, name) in [(csv_bytes, "order_lines.csv"), (jsonl.into_bytes(), "order_lines.jsonl")] {
            if rows.is_empty() && name.ends_with(".jsonl") {
                continue; // an empty JSON Lines file is refused as a whole
            }
            let stage = read_bytes(&bytes, name, "order_lines")
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            accounted(&stage)?;
            prop_assert_eq!(stage.read as usize, rows.len());
            prop_assert_eq!(stage.batch.num_rows(), expected_valid);
            let got: Vec<&str> = stage.rejects.iter().map(|r| r.column.as_deref().unwrap_or("")).collect();
            prop_assert_eq!(got, expected_columns.clone(), "{}", name);
        }
    }
}

/// A small valid order_lines Parquet file.
fn valid_parquet() -> Vec<u8> {
    use arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray};
    use std::sync::Arc;
    let batch = arrow::record_batch::RecordBatch::try_from_iter(vec![
        (
            "order_id",
            Arc::new(StringArray::from(vec!["O1", "O1", "O2"])) as ArrayRef,
        ),
        ("line_no", Arc::new(Int64Array::from(vec![1, 2, 1]))),
        (
            "product_id",
            Arc::new(StringArray::from(vec!["P1", "P2", "P2"])),
        ),
        ("quantity", Arc::new(Int64Array::from(vec![1, 2, 1]))),
        (
            "unit_price",
            Arc::new(StringArray::from(vec!["500.00", "80.00", "80.00"])),
        ),
        (
            "discount",
            Arc::new(StringArray::from(vec!["50.00", "0.00", "0.00"])),
        ),
        (
            "returned",
            Arc::new(BooleanArray::from(vec![false, false, true])),
        ),
    ])
    .unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

#[test]
fn the_valid_parquet_file_loads() {
    let stage = read_bytes(&valid_parquet(), "order_lines.parquet", "order_lines").unwrap();
    assert_eq!(stage.batch.num_rows(), 3);
    assert!(stage.rejects.is_empty());
}
