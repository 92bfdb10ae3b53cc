//! The columnar paths against the scalar ones, as oracles: decoding into
//! [`Column`]s must give the values and errors of [`Format::decode_record`],
//! and [`BatchEncoder`] the bytes and errors of [`Format::encode`], for
//! every type and format.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, Float32Array, Int16Array, Int32Array, StringViewArray, TimestampSecondArray,
    UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;

use super::{Column, Format, FormatKind};
use crate::catalog::types::SqlType;

fn fields(cols: &[(&str, SqlType)]) -> Vec<FieldRef> {
    super::test_fields(cols)
}

/// Decodes `inputs` both ways; returns the decoded columns.
fn check_decode(
    format: &Format,
    fields: &[FieldRef],
    is_key: bool,
    inputs: &[&[u8]],
) -> Vec<ArrayRef> {
    let mut dec = format.decoder(fields, is_key);
    let mut cols: Vec<Column> = fields
        .iter()
        .map(|f| Column::new(f.data_type(), 0))
        .collect();
    let mut expected: Vec<Vec<ScalarValue>> = vec![];
    let mut errors = 0;
    for input in inputs {
        let show = String::from_utf8_lossy(input);
        let old = format.decode_record(input, fields, is_key);
        let new = dec.decode_into(input, &mut cols);
        match (&old, &new) {
            (Ok(Some(row)), Ok(true)) => expected.push(row.clone()),
            (Ok(None), Ok(false)) => {}
            (Err(a), Err(b)) => {
                assert_eq!(a, b, "{show}");
                errors += 1;
                for c in &mut cols {
                    c.truncate(expected.len());
                }
            }
            _ => panic!("{show}: old {old:?}, new {new:?}"),
        }
        assert!(cols.iter().all(|c| c.len() == expected.len()), "{show}");
    }
    assert!(errors > 0 && !expected.is_empty(), "the cases cover both");
    let arrays: Vec<ArrayRef> = cols.into_iter().map(|c| c.finish().unwrap()).collect();
    for (c, f) in fields.iter().enumerate() {
        assert_eq!(arrays[c].data_type(), f.data_type());
        assert_eq!(arrays[c].len(), expected.len());
        for (r, row) in expected.iter().enumerate() {
            let got = ScalarValue::try_from_array(&arrays[c], r).unwrap();
            assert_eq!(
                format!("{got:?}"),
                format!("{:?}", row[c]),
                "{} row {r}",
                f.name()
            );
        }
    }
    arrays
}

/// Encodes every row of `arrays` both ways and compares.
fn check_encode(format: &Format, fields: &[FieldRef], is_key: bool, arrays: &[ArrayRef]) -> usize {
    let refs: Vec<&dyn Array> = arrays.iter().map(|a| a.as_ref()).collect();
    let mut enc = format.batch_encoder(refs, fields, is_key);
    let rows = arrays.first().map_or(0, |a| a.len());
    for row in 0..rows {
        let values: Vec<ScalarValue> = arrays
            .iter()
            .map(|a| ScalarValue::try_from_array(a, row).unwrap())
            .collect();
        let old = format.encode(&values, fields, is_key);
        assert_eq!(enc.encode(row), old, "row {row}: {values:?}");
        assert_eq!(
            enc.all_null(row).unwrap(),
            values.iter().all(|v| v.is_null())
        );
    }
    rows
}

fn all_types() -> Vec<FieldRef> {
    fields(&[
        ("B", SqlType::Boolean),
        ("I", SqlType::Int),
        ("L", SqlType::Bigint),
        ("D", SqlType::Double),
        ("E", SqlType::Decimal(10, 2)),
        ("S", SqlType::String),
        ("Y", SqlType::Bytes),
        ("T", SqlType::Timestamp),
        ("DT", SqlType::Date),
        ("TM", SqlType::Time),
        ("A", SqlType::Array(Box::new(SqlType::Int))),
        (
            "M",
            SqlType::Map(Box::new(SqlType::String), Box::new(SqlType::Double)),
        ),
        (
            "ST",
            SqlType::Struct(vec![
                ("a".into(), SqlType::Int),
                ("B".into(), SqlType::Array(Box::new(SqlType::String))),
            ]),
        ),
    ])
}

const JSON_RECORDS: &[&str] = &[
    r#"{"B":true,"I":-5,"L":998877665544332211,"D":1.0E10,"E":12.5,"S":"h\"i\n","Y":"YWI=","T":1600000000000,"DT":-1,"TM":86400000,"A":[1,null],"M":{"a":45.67,"b":null},"ST":{"a":1,"B":["x"]}}"#,
    r#"{"b":false,"i":"12","l":"-3","d":"2.5","e":"3.4","s":10,"y":"","t":"12","dt":"3","tm":"5","a":[],"m":{},"st":{"A":2}}"#,
    r#"{"s":{"a":[1,"x"]},"i":1.9,"l":1e30,"d":-0.0}"#,
    r#"{"S":[1,null,"b"],"I":3000000000,"D":"NaN","E":-0.01}"#,
    r#"{"i":1,"I":2,"i":3,"S":"last","s":"first"}"#,
    r#"{"I":1,"s":"é😀\u0001"}"#,
    "null",
    "{}",
    r#"{"L":9223372036854775807,"D":1e400,"S":true,"T":-5}"#,
    // Errors, each leaving the columns untouched.
    r#"{"I": true}"#,
    r#"{"B":true,"I":"x"}"#,
    r#"{"B":true,"L":"1.5"}"#,
    r#"{"E":123456789012}"#,
    r#"{"E":"abc"}"#,
    r#"{"Y":"!!"}"#,
    r#"{"TM":90000000}"#,
    r#"{"DT":9999999999}"#,
    r#"{"A":[1,"x"]}"#,
    r#"{"M":{"k":true}}"#,
    r#"{"ST":{"a":"q"}}"#,
    r#"{"B":1}"#,
    r#"{"D":{}}"#,
    r#"{"T":[]}"#,
    "[1]",
    "\"x\"",
    "12",
    "{",
    "{\"I\":1,}",
    "",
    "{\"S\":\"\u{1}\"}",
    "{\"I\": 1} x",
    // Valid again, in another member order.
    r#"{"ST":null,"s":"z","b":true}"#,
];

#[test]
fn json_decodes_as_the_scalar_path_and_encodes_the_same_bytes() {
    let f = all_types();
    let json = Format::new(FormatKind::Json);
    let inputs: Vec<&[u8]> = JSON_RECORDS.iter().map(|s| s.as_bytes()).collect();
    let mut with_bad_utf8 = inputs.clone();
    with_bad_utf8.push(b"{\"S\": \"\xff\"}");
    let arrays = check_decode(&json, &f, false, &with_bad_utf8);
    assert_eq!(check_encode(&json, &f, false, &arrays), 9);
    // One column at a time: unwrapped values and keys, and DELIMITED
    // where the type allows it.
    for (c, field) in f.iter().enumerate() {
        let one = vec![field.clone()];
        let col = vec![arrays[c].clone()];
        let unwrapped = json.clone().with_wrap_single(Some(false));
        check_encode(&unwrapped, &one, false, &col);
        check_encode(&json, &one, true, &col);
        check_encode(&json, &one, false, &col);
    }
    let flat: Vec<usize> = (0..10).collect();
    let delimited = Format::new(FormatKind::Delimited).with_delimiter(';');
    let ff: Vec<FieldRef> = flat.iter().map(|&c| f[c].clone()).collect();
    let fa: Vec<ArrayRef> = flat.iter().map(|&c| arrays[c].clone()).collect();
    check_encode(&delimited, &ff, false, &fa);
    check_encode(&Format::new(FormatKind::Delimited), &ff, true, &fa);
    // Nested types are an error in DELIMITED, the same error both ways.
    check_encode(&delimited, &f[10..11], false, &arrays[10..11]);
}

#[test]
fn unwrapped_json_decodes_as_the_scalar_path() {
    let f = fields(&[("V", SqlType::Int)]);
    let json = Format::new(FormatKind::Json);
    let inputs: [&[u8]; 7] = [b"1", b"null", b"\"7\"", b"[1]", b"true", b"-2", b"x"];
    let arrays = check_decode(&json, &f, true, &inputs);
    check_encode(&json, &f, true, &arrays);
    let wrapped_off = json.with_wrap_single(Some(false));
    check_decode(&wrapped_off, &f, false, &inputs);
}

#[test]
fn delimited_decodes_as_the_scalar_path_and_encodes_the_same_bytes() {
    let f: Vec<FieldRef> = all_types().into_iter().take(10).collect();
    let inputs: &[&[u8]] = &[
        b"true,1,2,3.5,1.25,abc,YQ==,10,3,100",
        b",,,,,,,,,",
        b"yes,-1,-2,1e3,-0.5,\"a,\"\"b\",,0,-3,0",
        b"false,1,2,3.5,1.25, x ,YQ==,10,3,100\n\nignored,but,parsed",
        b"true,1,2,NaN,1.25,abc,YQ==,10,3,100\r\n",
        b"true,1,2,3.5,1.25,\xff,YQ==,10,3,100",
        // Errors.
        b"true,1,2",
        b"true,x,2,3.5,1.25,abc,YQ==,10,3,100",
        b"true,1,2,3.5,1.255,abc,YQ==,10,3,100",
        b"true,1,2,3.5,1.25,abc,!,10,3,100",
        b"true,1,2,3.5,1.25,abc,YQ==,10,3,86400001",
        b"true,1,2,3.5,1.25,\"abc\"x,YQ==,10,3,100",
        b"true,1,2,3.5,1.25,\"abc",
        b"",
        b"\n",
        b"true,2147483648,2,3.5,1.25,abc,YQ==,10,3,100",
    ];
    for delimiter in [',', '\t'] {
        let format = Format::new(FormatKind::Delimited).with_delimiter(delimiter);
        let replaced: Vec<Vec<u8>> = inputs
            .iter()
            .map(|i| {
                i.iter()
                    .map(|&b| if b == b',' { delimiter as u8 } else { b })
                    .collect()
            })
            .collect();
        let refs: Vec<&[u8]> = replaced.iter().map(|v| v.as_slice()).collect();
        let arrays = check_decode(&format, &f, false, &refs);
        assert_eq!(check_encode(&format, &f, false, &arrays), 6);
    }
}

#[test]
fn kafka_decodes_as_the_scalar_path_and_encodes_the_same_bytes() {
    let kafka = Format::new(FormatKind::Kafka);
    let cases: [(SqlType, Vec<&[u8]>); 5] = [
        (
            SqlType::Int,
            vec![&[0, 0, 0, 7][..], &[1, 2, 3][..], &[0xff; 4][..]],
        ),
        (
            SqlType::Bigint,
            vec![&[0, 0, 0, 0, 0, 0, 1, 0][..], &[1][..]],
        ),
        (
            SqlType::Double,
            vec![&[0x3f, 0xf8, 0, 0, 0, 0, 0, 0][..], &[][..]],
        ),
        (SqlType::String, vec![&b"bob"[..], &b"\xff"[..], &b""[..]]),
        (SqlType::Bytes, vec![&b"\x00\x01"[..], &b""[..]]),
    ];
    for (t, inputs) in cases {
        let f = fields(&[("K", t.clone())]);
        let mut dec = kafka.decoder(&f, true);
        let mut col = vec![Column::new(f[0].data_type(), 0)];
        for input in &inputs {
            let old = kafka.decode_record(input, &f, true);
            let n = col[0].len();
            let new = dec.decode_into(input, &mut col);
            match (&old, &new) {
                (Ok(Some(_)), Ok(true)) => {}
                (Err(a), Err(b)) => {
                    assert_eq!(a, b);
                    col[0].truncate(n);
                }
                _ => panic!("{t:?} {input:?}: {old:?} {new:?}"),
            }
        }
        let arrays = vec![col.pop().unwrap().finish().unwrap()];
        assert!(check_encode(&kafka, &f, true, &arrays) >= 1);
        check_encode(&kafka, &f, false, &arrays);
    }
}

#[test]
fn other_widths_and_units_encode_as_the_scalar_path() {
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(Int16Array::from(vec![Some(-3), None])),
        Arc::new(UInt32Array::from(vec![Some(4_000_000_000), Some(1)])),
        Arc::new(Float32Array::from(vec![Some(1.5), Some(f32::NAN)])),
        Arc::new(StringViewArray::from(vec![Some("v"), None])),
        Arc::new(TimestampSecondArray::from(vec![Some(2), None])),
        Arc::new(Int32Array::from(vec![Some(9), None])),
    ];
    let f: Vec<FieldRef> = arrays
        .iter()
        .enumerate()
        .map(|(i, a)| Arc::new(Field::new(format!("C{i}"), a.data_type().clone(), true)))
        .collect();
    check_encode(&Format::new(FormatKind::Json), &f, false, &arrays);
    check_encode(&Format::new(FormatKind::Delimited), &f, false, &arrays);
    check_encode(
        &Format::new(FormatKind::ProtobufNoSr),
        &f[..1],
        false,
        &arrays[..1],
    );
    // KAFKA: a column of another type than the field's (widened or not).
    let kafka = Format::new(FormatKind::Kafka);
    for declared in [DataType::Int64, DataType::Utf8, DataType::Float64] {
        for a in &arrays {
            let field = vec![Arc::new(Field::new("K", declared.clone(), true)) as FieldRef];
            check_encode(&kafka, &field, false, std::slice::from_ref(a));
        }
    }
    // A column count that does not match the fields.
    let json = Format::new(FormatKind::Json);
    check_encode(&json, &f[..2], false, &arrays[..1]);
}
