//! botocore's reading of an S3 error body: every child of `<Error>` becomes an entry of the
//! `Error` dict of `ClientError.response` (`Code`, `Message`, and S3's extras such as
//! `BucketName`, `Key`, `Region` or `Condition`), where the SDK keeps only the code and message.

/// A value of botocore's `Error` dict.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorField {
    /// An element's text; `None` for an empty one, as ElementTree's `.text`.
    Text(Option<String>),
    /// An element with elements inside: a dict of them.
    Nested(Vec<(String, ErrorField)>),
}

/// What botocore's parser makes of an error body it can read as XML.
#[derive(Debug, PartialEq)]
pub struct ErrorBody {
    /// The `Error` dict.
    pub error: Vec<(String, ErrorField)>,
    /// Keys botocore puts beside `Error` in the response, from a body that is not S3's
    /// `<Error>` (an HTML page's `body`, for one).
    pub response_keys: Vec<(String, ErrorField)>,
    /// Whether it is S3's `<Error>`. botocore then takes the request ids from the headers;
    /// otherwise only the body's own `<RequestId>`, if any.
    pub is_s3_error: bool,
}

/// botocore's reading of `body`, or `None` when it is not XML and botocore tells the error by
/// its status. In S3's `<Error>`, `RequestId` and `HostId` are left out: botocore has them in
/// `ResponseMetadata` only.
pub fn read(body: &[u8]) -> Option<ErrorBody> {
    let text = std::str::from_utf8(body).ok()?;
    let document = roxmltree::Document::parse(text).ok()?;
    let root = document.root_element();
    let mut fields = children(root);
    // botocore compares ElementTree's tag, which carries a namespace if there is one.
    if root.tag_name().name() == "Error" && root.tag_name().namespace().is_none() {
        fields.retain(|(name, _)| name != "RequestId" && name != "HostId");
        return Some(ErrorBody {
            error: fields,
            response_keys: Vec::new(),
            is_s3_error: true,
        });
    }
    // Another service's error: botocore merges what it read into a default Error.
    let mut error = vec![
        ("Message".to_owned(), ErrorField::Text(Some(String::new()))),
        ("Code".to_owned(), ErrorField::Text(Some(String::new()))),
    ];
    if let Some(ErrorField::Nested(inner)) = take(&mut fields, "Error") {
        for (name, value) in inner {
            match error.iter_mut().find(|(known, _)| *known == name) {
                Some((_, known)) => *known = value,
                None => error.push((name, value)),
            }
        }
    }
    Some(ErrorBody {
        error,
        response_keys: fields,
        is_s3_error: false,
    })
}

/// Removes the field `name` from `fields` and returns its value.
pub fn take(fields: &mut Vec<(String, ErrorField)>, name: &str) -> Option<ErrorField> {
    let at = fields.iter().position(|(field, _)| field == name)?;
    Some(fields.remove(at).1)
}

/// The text of the field `name`, if it is there and has text.
pub fn text<'a>(fields: &'a [(String, ErrorField)], name: &str) -> Option<&'a str> {
    fields.iter().find_map(|(field, value)| match value {
        ErrorField::Text(Some(text)) if field == name => Some(text.as_str()),
        _ => None,
    })
}

/// botocore's `_build_name_to_xml_node` then `_replace_nodes`: the children by tag name, in
/// order of first appearance. A leaf is its text, an element with children a dict of them, and
/// a repeated tag the dict of its first element's children.
fn children(node: roxmltree::Node) -> Vec<(String, ErrorField)> {
    let mut by_name: Vec<(&str, Vec<roxmltree::Node>)> = Vec::new();
    for child in node.children().filter(roxmltree::Node::is_element) {
        let name = child.tag_name().name();
        match by_name.iter_mut().find(|(seen, _)| *seen == name) {
            Some((_, repeated)) => repeated.push(child),
            None => by_name.push((name, vec![child])),
        }
    }
    by_name
        .into_iter()
        .map(|(name, nodes)| {
            let first = nodes[0];
            let value = if nodes.len() > 1 || first.children().any(|c| c.is_element()) {
                ErrorField::Nested(children(first))
            } else {
                ErrorField::Text(first.text().map(str::to_owned))
            };
            (name.to_owned(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_field(name: &str, value: Option<&str>) -> (String, ErrorField) {
        (name.to_owned(), ErrorField::Text(value.map(str::to_owned)))
    }

    fn s3_error(fields: Vec<(String, ErrorField)>) -> Option<ErrorBody> {
        Some(ErrorBody {
            error: fields,
            response_keys: Vec::new(),
            is_s3_error: true,
        })
    }

    #[test]
    fn every_field_of_an_s3_error_in_order_without_the_ids() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>a&amp;b</BucketName><RequestId>R</RequestId><HostId>H</HostId><Key></Key></Error>"#;
        assert_eq!(
            read(body),
            s3_error(vec![
                text_field("Code", Some("NoSuchBucket")),
                text_field("Message", Some("The specified bucket does not exist")),
                text_field("BucketName", Some("a&b")),
                text_field("Key", None),
            ])
        );
    }

    #[test]
    fn nested_and_repeated_elements_are_read_as_botocore_reads_them() {
        let body = b"<Error><Code>C</Code><Detail><A>1</A><B/></Detail><Item>x</Item>\
            <Item>y</Item></Error>";
        assert_eq!(
            read(body),
            s3_error(vec![
                text_field("Code", Some("C")),
                (
                    "Detail".to_owned(),
                    ErrorField::Nested(vec![text_field("A", Some("1")), text_field("B", None)])
                ),
                ("Item".to_owned(), ErrorField::Nested(vec![])),
            ])
        );
    }

    #[test]
    fn another_root_is_merged_into_a_default_error() {
        let body = b"<ErrorResponse><Error><Code>X</Code></Error><RequestId>R</RequestId>\
            </ErrorResponse>";
        assert_eq!(
            read(body),
            Some(ErrorBody {
                error: vec![
                    text_field("Message", Some("")),
                    text_field("Code", Some("X"))
                ],
                response_keys: vec![text_field("RequestId", Some("R"))],
                is_s3_error: false,
            })
        );
        let namespaced = read(b"<Error xmlns=\"urn:x\"><Code>C</Code></Error>").expect("XML");
        assert!(!namespaced.is_s3_error);
        assert_eq!(
            namespaced.response_keys,
            vec![text_field("Code", Some("C"))]
        );
    }

    #[test]
    fn a_body_that_is_not_xml_is_none() {
        assert_eq!(read(b""), None);
        assert_eq!(read(b"<Error><Code>unclosed"), None);
        assert_eq!(read(b"Internal error"), None);
    }
}
