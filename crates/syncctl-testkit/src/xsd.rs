//! Contract checks for QuickBooks: JSON bodies checked against Intuit's XML Schemas.
//!
//! Intuit publishes no OpenAPI for QuickBooks Online; its machine-readable contract is the
//! set of XSDs its SDKs are generated from (`Finance.xsd`, `IntuitRestServiceDef.xsd`, …,
//! namespace `http://schema.intuit.com/finance/v3`). The JSON API uses the same names:
//! elements and attributes become keys, repeated elements become arrays, a simple-content
//! type (`ReferenceType`) becomes `{"value": …, "name": …}`. [`XsdModel::check`] walks a JSON
//! body against a type and reports every key that is neither an element nor an attribute of
//! that type (base types, choices, groups and substitution groups such as `IntuitObject`
//! included), every value of the wrong JSON kind for its XSD type (string, number, boolean,
//! object) and every value outside an enumeration. It checks names and types, not
//! cardinality or required elements (QuickBooks' JSON omits empty elements).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde_json::Value;

/// A child of a complex type: an element (with its type and whether it repeats) or an
/// attribute.
#[derive(Debug, Clone)]
struct Child {
    ty: String,
    repeated: bool,
}

#[derive(Debug, Clone, Default)]
struct ComplexType {
    base: Option<String>,
    /// Simple content's base type (`ReferenceType` extends `id`): the JSON `value` key.
    simple_content: Option<String>,
    children: BTreeMap<String, Child>,
    /// Substitution-group heads referenced (`IntuitObject`), repeated or not.
    substitutions: Vec<(String, bool)>,
    groups: Vec<String>,
    any: bool,
}

#[derive(Debug, Clone, Default)]
struct SimpleType {
    base: String,
    enumeration: BTreeSet<String>,
}

/// The parsed schemas.
#[derive(Debug, Default)]
pub struct XsdModel {
    complex: HashMap<String, ComplexType>,
    simple: HashMap<String, SimpleType>,
    groups: HashMap<String, ComplexType>,
    /// Global elements: name → type.
    elements: HashMap<String, String>,
    /// Substitution-group head → member element names.
    substitution_members: HashMap<String, Vec<String>>,
}

fn local(name: &str) -> String {
    name.rsplit(':').next().unwrap_or(name).to_owned()
}

fn xs_children<'a, 'i>(
    node: roxmltree::Node<'a, 'i>,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    node.children().filter(|n| {
        n.is_element() && n.tag_name().namespace() == Some("http://www.w3.org/2001/XMLSchema")
    })
}

impl XsdModel {
    /// Loads every `.xsd` file in `dir`.
    ///
    /// # Errors
    /// A file that cannot be read or parsed.
    pub fn load_dir(dir: &Path) -> Result<Self, String> {
        let mut model = Self::default();
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "xsd"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!("no .xsd files in {}", dir.display()));
        }
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            let doc =
                roxmltree::Document::parse(&text).map_err(|e| format!("{}: {e}", f.display()))?;
            model.add(doc.root_element());
        }
        Ok(model)
    }

    fn add(&mut self, schema: roxmltree::Node<'_, '_>) {
        for n in xs_children(schema) {
            let name = n.attribute("name").map(str::to_owned);
            match (n.tag_name().name(), name) {
                ("complexType", Some(name)) => {
                    let t = Self::complex_type(n);
                    self.complex.insert(name, t);
                }
                ("simpleType", Some(name)) => {
                    let mut st = SimpleType::default();
                    for r in xs_children(n).filter(|c| c.tag_name().name() == "restriction") {
                        st.base = r.attribute("base").map(local).unwrap_or_default();
                        for e in xs_children(r).filter(|c| c.tag_name().name() == "enumeration") {
                            if let Some(v) = e.attribute("value") {
                                st.enumeration.insert(v.to_owned());
                            }
                        }
                    }
                    self.simple.insert(name, st);
                }
                ("group", Some(name)) => {
                    let mut t = ComplexType::default();
                    Self::particles(n, &mut t, false);
                    self.groups.insert(name, t);
                }
                ("element", Some(name)) => {
                    if let Some(ty) = n.attribute("type") {
                        self.elements.insert(name.clone(), local(ty));
                    }
                    if let Some(head) = n.attribute("substitutionGroup") {
                        self.substitution_members
                            .entry(local(head))
                            .or_default()
                            .push(name);
                    }
                }
                _ => {}
            }
        }
    }

    fn complex_type(n: roxmltree::Node<'_, '_>) -> ComplexType {
        let mut t = ComplexType::default();
        for c in xs_children(n) {
            match c.tag_name().name() {
                "complexContent" | "simpleContent" => {
                    let simple = c.tag_name().name() == "simpleContent";
                    for ext in xs_children(c) {
                        let base = ext.attribute("base").map(local);
                        if simple {
                            t.simple_content = base;
                        } else {
                            t.base = base;
                        }
                        Self::particles(ext, &mut t, false);
                    }
                }
                _ => Self::particles(n, &mut t, false),
            }
        }
        t
    }

    /// Collects elements, attributes, groups and wildcards below a particle.
    fn particles(n: roxmltree::Node<'_, '_>, t: &mut ComplexType, repeated: bool) {
        for c in xs_children(n) {
            let many = repeated
                || c.attribute("maxOccurs")
                    .is_some_and(|m| m == "unbounded" || m.parse::<u32>().is_ok_and(|x| x > 1));
            match c.tag_name().name() {
                "sequence" | "choice" | "all" => Self::particles(c, t, many),
                "element" => {
                    if let Some(r) = c.attribute("ref") {
                        t.substitutions.push((local(r), many));
                    } else if let Some(name) = c.attribute("name") {
                        let ty = c
                            .attribute("type")
                            .map_or_else(|| "string".to_owned(), local);
                        t.children
                            .insert(name.to_owned(), Child { ty, repeated: many });
                    }
                }
                "attribute" => {
                    if let Some(name) = c.attribute("name") {
                        let ty = c
                            .attribute("type")
                            .map_or_else(|| "string".to_owned(), local);
                        t.children.insert(
                            name.to_owned(),
                            Child {
                                ty,
                                repeated: false,
                            },
                        );
                    }
                }
                "group" => {
                    if let Some(r) = c.attribute("ref") {
                        t.groups.push(local(r));
                    }
                }
                "any" => t.any = true,
                _ => {}
            }
        }
    }

    /// The type of a global element (`Customer` → `Customer`).
    #[must_use]
    pub fn element_type(&self, element: &str) -> Option<&str> {
        self.elements.get(element).map(String::as_str)
    }

    /// Whether a complex type of this name exists.
    #[must_use]
    pub fn has_type(&self, ty: &str) -> bool {
        self.complex.contains_key(ty) || self.simple.contains_key(ty)
    }

    /// The child named `key` of complex type `ty`, searching base types, groups and
    /// substitution groups; `Some(None)` for a wildcard (`xs:any`).
    fn child(&self, ty: &str, key: &str) -> Option<Option<Child>> {
        let mut cur = Some(ty.to_owned());
        let mut guard = 0;
        while let Some(name) = cur {
            guard += 1;
            if guard > 32 {
                break;
            }
            let t = self.complex.get(&name)?;
            if let Some(c) = t.children.get(key) {
                return Some(Some(c.clone()));
            }
            for g in &t.groups {
                if let Some(c) = self.groups.get(g).and_then(|gt| gt.children.get(key)) {
                    return Some(Some(c.clone()));
                }
            }
            for (head, many) in &t.substitutions {
                let members = self.substitution_members.get(head);
                let is_member = members.is_some_and(|m| m.iter().any(|x| x == key)) || head == key;
                if is_member && let Some(ty) = self.elements.get(key) {
                    return Some(Some(Child {
                        ty: ty.clone(),
                        repeated: *many,
                    }));
                }
            }
            if t.any {
                return Some(None);
            }
            if key == "value"
                && let Some(sc) = &t.simple_content
            {
                return Some(Some(Child {
                    ty: sc.clone(),
                    repeated: false,
                }));
            }
            cur = t.base.clone();
        }
        None
    }

    /// The built-in XSD type a simple type derives from, and the enumeration (if any).
    fn builtin(&self, ty: &str) -> (String, Option<&BTreeSet<String>>) {
        let mut cur = ty.to_owned();
        let mut enumeration = None;
        for _ in 0..16 {
            match self.simple.get(&cur) {
                Some(s) => {
                    if enumeration.is_none() && !s.enumeration.is_empty() {
                        enumeration = Some(&s.enumeration);
                    }
                    cur.clone_from(&s.base);
                }
                None => break,
            }
        }
        (cur, enumeration)
    }

    /// Checks `value` against type `ty`; returns every problem, each prefixed with its path.
    #[must_use]
    pub fn check(&self, ty: &str, value: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(ty, value, ty, &mut out);
        out
    }

    /// Checks an entity body (`Customer`, `Invoice`) by its global element name.
    #[must_use]
    pub fn check_element(&self, element: &str, value: &Value) -> Vec<String> {
        match self.element_type(element) {
            Some(ty) => self.check(ty, value),
            None => vec![format!("{element}: no such global element in the schema")],
        }
    }

    fn walk(&self, ty: &str, value: &Value, path: &str, out: &mut Vec<String>) {
        if self.complex.contains_key(ty) {
            let Value::Object(m) = value else {
                // A simple-content type may appear as a bare value in some bodies.
                if let Some(sc) = self.complex.get(ty).and_then(|t| t.simple_content.clone()) {
                    self.walk(&sc, value, path, out);
                } else {
                    out.push(format!("{path}: expected an object for {ty}, got {value}"));
                }
                return;
            };
            for (k, v) in m {
                let p = format!("{path}.{k}");
                match self.child(ty, k) {
                    None => out.push(format!("{p}: {ty} has no element or attribute {k:?}")),
                    Some(None) => {}
                    Some(Some(child)) => match v {
                        Value::Array(items) => {
                            if !child.repeated {
                                out.push(format!("{p}: {k} is not repeated in {ty}, got an array"));
                            }
                            for (i, item) in items.iter().enumerate() {
                                self.walk(&child.ty, item, &format!("{p}[{i}]"), out);
                            }
                        }
                        other => self.walk(&child.ty, other, &p, out),
                    },
                }
            }
            return;
        }
        let (base, enumeration) = self.builtin(ty);
        let kind_ok = match base.as_str() {
            "boolean" => value.is_boolean(),
            "decimal" | "double" | "float" | "int" | "integer" | "long" | "short" | "byte"
            | "positiveInteger" | "nonNegativeInteger" | "negativeInteger" | "unsignedInt"
            | "unsignedLong" => value.is_number(),
            "anyType" | "anySimpleType" => true,
            // string, id, date, dateTime, time, token, …
            _ => value.is_string(),
        };
        if !kind_ok {
            out.push(format!("{path}: {value} is not a {ty} ({base})"));
            return;
        }
        if let (Some(allowed), Value::String(s)) = (enumeration, value)
            && !allowed.contains(s)
        {
            out.push(format!("{path}: {s:?} is not one of the {ty} values"));
        }
        if base == "dateTime"
            && let Value::String(s) = value
            && chrono::DateTime::parse_from_rfc3339(s).is_err()
        {
            out.push(format!("{path}: {s:?} is not an xs:dateTime with offset"));
        }
        if base == "date"
            && let Value::String(s) = value
            && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err()
        {
            out.push(format!("{path}: {s:?} is not an xs:date"));
        }
    }
}

/// The QuickBooks XSDs: `quickbooks/` under the contracts dir (the copies in
/// `tests/contracts/vendor/quickbooks`, or `SYNCCTL_CONTRACTS_DIR`).
///
/// # Panics
/// When the schemas are missing or unreadable: contract tests never skip.
#[must_use]
pub fn quickbooks() -> &'static XsdModel {
    static MODEL: std::sync::OnceLock<XsdModel> = std::sync::OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = crate::prism::contracts_dir().join("quickbooks");
        XsdModel::load_dir(&dir).unwrap_or_else(|e| {
            panic!(
                "QuickBooks XSDs not loadable ({e}); they live in tests/contracts/vendor/quickbooks"
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const XSD: &str = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
      <xs:element name="Thing" type="Thing" substitutionGroup="Obj"/>
      <xs:complexType name="Base"><xs:sequence><xs:element name="Id" type="id"/></xs:sequence>
        <xs:attribute name="domain" type="xs:string"/></xs:complexType>
      <xs:simpleType name="id"><xs:restriction base="xs:string"/></xs:simpleType>
      <xs:simpleType name="Color"><xs:restriction base="xs:string"><xs:enumeration value="Red"/></xs:restriction></xs:simpleType>
      <xs:complexType name="Ref"><xs:simpleContent><xs:extension base="id"><xs:attribute name="name" type="xs:string"/></xs:extension></xs:simpleContent></xs:complexType>
      <xs:complexType name="Thing"><xs:complexContent><xs:extension base="Base"><xs:sequence>
        <xs:element name="Amount" type="xs:decimal"/>
        <xs:element name="Color" type="Color"/>
        <xs:element name="Line" type="Base" maxOccurs="unbounded"/>
        <xs:element name="OwnerRef" type="Ref"/>
      </xs:sequence></xs:extension></xs:complexContent></xs:complexType>
      <xs:complexType name="Envelope"><xs:choice><xs:element ref="Obj" maxOccurs="unbounded"/></xs:choice></xs:complexType>
    </xs:schema>"#;

    fn model() -> XsdModel {
        let mut m = XsdModel::default();
        let doc = roxmltree::Document::parse(XSD).unwrap();
        m.add(doc.root_element());
        m
    }

    #[test]
    fn accepts_what_the_schema_names() {
        let m = model();
        let ok = json!({"Id": "1", "domain": "QBO", "Amount": 2.5, "Color": "Red", "Line": [{"Id": "2"}], "OwnerRef": {"value": "7", "name": "x"}});
        assert_eq!(m.check_element("Thing", &ok), Vec::<String>::new());
        assert!(m.check("Envelope", &json!({"Thing": [ok]})).is_empty());
    }

    #[test]
    fn reports_unknown_names_wrong_kinds_and_enums() {
        let m = model();
        let bad = json!({"Id": 1, "Amount": "2.5", "Color": "Blue", "Colour": "Red", "OwnerRef": {"value": "7", "nick": "x"}, "Line": {"Id": "3", "Extra": true}});
        let problems = m.check_element("Thing", &bad);
        for want in [
            "Thing.Id: 1 is not",
            "Thing.Amount",
            "\"Blue\" is not one of",
            "no element or attribute \"Colour\"",
            "OwnerRef.nick: Ref has no element or attribute \"nick\"",
            "Line.Extra: Base has no element or attribute \"Extra\"",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{want} missing from {problems:#?}"
            );
        }
        assert!(
            m.check("Envelope", &json!({"Gadget": {}}))
                .iter()
                .any(|p| p.contains("Gadget"))
        );
    }
}
