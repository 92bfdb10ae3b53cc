//! The NONE format: for keys (or values) that have no columns.
//!
//! It reads nothing from the bytes and writes no bytes; declaring any
//! column with it is an error, in ksqlDB's words.

use datafusion::arrow::datatypes::FieldRef;

use super::column_list;

/// Why the format cannot carry these columns, if it cannot.
pub(super) fn unsupported(fields: &[FieldRef], is_key: bool) -> Option<String> {
    (!fields.is_empty()).then(|| {
        format!(
            "The 'NONE' format can only be used when no columns are defined. Got: {}",
            column_list(fields, is_key)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Format, FormatKind};
    use super::*;
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field};

    #[test]
    fn carries_nothing() {
        let none = Format::new(FormatKind::None);
        assert_eq!(none.decode(b"anything", &[], true).unwrap(), vec![]);
        assert_eq!(none.encode(&[], &[], true).unwrap(), None);
        assert!(none.validate(&[], true).is_ok());
    }

    #[test]
    fn rejects_columns() {
        let f: Vec<FieldRef> = vec![Arc::new(Field::new("K", DataType::Int32, true))];
        assert_eq!(
            unsupported(&f, true).unwrap(),
            "The 'NONE' format can only be used when no columns are defined. Got: [`K` INTEGER KEY]"
        );
    }
}
