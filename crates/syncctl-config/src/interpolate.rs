//! `${VAR}` interpolation into the string values of an already parsed config.
//!
//! Interpolation happens after YAML parsing, one scalar at a time, so a value holding `"`, `,`,
//! `\`, `#`, `:` or a newline is inserted literally and can never change the document's
//! structure (a password with a quote used to add a key when this was textual). Mapping keys,
//! enum tags, numbers and booleans are never interpolated; only string values are.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, Visitor};

/// Interpolation failed; lists every missing or invalid variable at once.
#[derive(Debug, thiserror::Error)]
#[error("config interpolation failed: {}", problems.join("; "))]
pub struct InterpolateError {
    /// One entry per problem.
    pub problems: Vec<String>,
}

/// Replaces `${VAR}`, `${VAR:-default}` and `${VAR:?message}` in one scalar value; `$$` is a
/// literal `$`. An empty variable counts as unset. Variable values are inserted literally and
/// never re-scanned, so a value containing `${…}` stays as it is.
///
/// # Errors
/// Lists every unset variable without a default and every invalid variable name.
pub fn interpolate(
    text: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Result<String, InterpolateError> {
    let mut problems = Vec::new();
    let out = interpolate_into(text, &get, &mut problems);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(InterpolateError { problems })
    }
}

fn interpolate_into(
    text: &str,
    get: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> String {
    if !text.contains('$') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body_and_tail) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body_and_tail.find('}') else {
            problems.push("unterminated ${".to_owned());
            out.push_str(&rest[pos..]);
            rest = "";
            break;
        };
        let body = &body_and_tail[..end];
        rest = &body_and_tail[end + 1..];
        let (name, default, required_msg) = if let Some((n, d)) = body.split_once(":-") {
            (n, Some(d), None)
        } else if let Some((n, m)) = body.split_once(":?") {
            (n, None, Some(m))
        } else {
            (body, None, None)
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            problems.push(format!("invalid variable name {:?}", truncate(name)));
            continue;
        }
        match get(name).filter(|v| !v.is_empty()) {
            Some(v) => out.push_str(&v),
            None => match (default, required_msg) {
                (Some(d), _) => out.push_str(d),
                (_, Some(m)) if !m.is_empty() => {
                    problems.push(format!("${{{name}}} is not set: {m}"));
                }
                _ => problems.push(format!("${{{name}}} is not set")),
            },
        }
    }
    out.push_str(rest);
    out
}

/// A name in an error message, cut so a hostile config cannot make the message huge.
fn truncate(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// What every layer of the interpolating deserializer shares: the variable lookup and the
/// problems found so far (all are reported at once, after the whole document was read).
pub(crate) struct Interpolation<'g> {
    get: &'g dyn Fn(&str) -> Option<String>,
    problems: RefCell<Vec<String>>,
}

impl<'g> Interpolation<'g> {
    pub(crate) fn new(get: &'g dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            get,
            problems: RefCell::new(Vec::new()),
        }
    }

    pub(crate) fn into_problems(self) -> Vec<String> {
        self.problems.into_inner()
    }

    fn apply(&self, s: &str) -> String {
        interpolate_into(s, self.get, &mut self.problems.borrow_mut())
    }
}

/// A deserializer that interpolates every string value its inner deserializer produces.
pub(crate) struct Interpolating<'c, 'g, D> {
    pub(crate) inner: D,
    pub(crate) ctx: &'c Interpolation<'g>,
}

struct Seed<'c, 'g, S> {
    inner: S,
    ctx: &'c Interpolation<'g>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, '_, S> {
    type Value = S::Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.deserialize(Interpolating {
            inner: d,
            ctx: self.ctx,
        })
    }
}

struct Wrap<'c, 'g, V> {
    inner: V,
    ctx: &'c Interpolation<'g>,
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.inner.$method(v)
        })*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, '_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_bytes(&[u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if v.contains('$') {
            self.inner.visit_string(self.ctx.apply(v))
        } else {
            self.inner.visit_str(v)
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        if v.contains('$') {
            self.inner.visit_string(self.ctx.apply(v))
        } else {
            self.inner.visit_borrowed_str(v)
        }
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        if v.contains('$') {
            self.inner.visit_string(self.ctx.apply(&v))
        } else {
            self.inner.visit_string(v)
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Interpolating {
            inner: d,
            ctx: self.ctx,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(Interpolating {
            inner: d,
            ctx: self.ctx,
        })
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_seq(Access {
            inner: seq,
            ctx: self.ctx,
        })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(Access {
            inner: map,
            ctx: self.ctx,
        })
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(Access {
            inner: data,
            ctx: self.ctx,
        })
    }
}

/// Wraps sequence, map, enum and variant access so nested values are interpolated too.
struct Access<'c, 'g, A> {
    inner: A,
    ctx: &'c Interpolation<'g>,
}

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for Access<'_, '_, A> {
    type Error = A::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(Seed {
            inner: seed,
            ctx: self.ctx,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for Access<'_, '_, A> {
    type Error = A::Error;
    // Keys are names, not values: never interpolated.
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.inner.next_key_seed(seed)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.inner.next_value_seed(Seed {
            inner: seed,
            ctx: self.ctx,
        })
    }
    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, 'c, 'g, A: de::EnumAccess<'de>> de::EnumAccess<'de> for Access<'c, 'g, A> {
    type Error = A::Error;
    type Variant = Access<'c, 'g, A::Variant>;
    // The variant tag is a name: never interpolated.
    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, Self::Variant), A::Error> {
        let (v, variant) = self.inner.variant_seed(seed)?;
        Ok((
            v,
            Access {
                inner: variant,
                ctx: self.ctx,
            },
        ))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Access<'_, '_, A> {
    type Error = A::Error;
    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.newtype_variant_seed(Seed {
            inner: seed,
            ctx: self.ctx,
        })
    }
    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(
            len,
            Wrap {
                inner: visitor,
                ctx: self.ctx,
            },
        )
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(
            fields,
            Wrap {
                inner: visitor,
                ctx: self.ctx,
            },
        )
    }
}

macro_rules! forward_deserialize {
    ($($method:ident),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.inner.$method(Wrap { inner: visitor, ctx: self.ctx })
        })*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Interpolating<'_, '_, D> {
    type Error = D::Error;

    forward_deserialize!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_string,
        deserialize_bytes,
        deserialize_byte_buf,
        deserialize_option,
        deserialize_unit,
        deserialize_seq,
        deserialize_map,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_unit_struct(
            name,
            Wrap {
                inner: visitor,
                ctx: self.ctx,
            },
        )
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_newtype_struct(
            name,
            Wrap {
                inner: visitor,
                ctx: self.ctx,
            },
        )
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple(
            len,
            Wrap {
                inner: visitor,
                ctx: self.ctx,
            },
        )
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_tuple_struct(
            name,
            len,
            Wrap {
                inner: visitor,
                ctx: self.ctx,
            },
        )
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_struct(
            name,
            fields,
            Wrap {
                inner: visitor,
                ctx: self.ctx,
            },
        )
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.inner.deserialize_enum(
            name,
            variants,
            Wrap {
                inner: visitor,
                ctx: self.ctx,
            },
        )
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

// Only so `IntoDeserializer` based tests below can drive the wrapper without YAML.
#[cfg(test)]
fn through<'de, T: de::Deserialize<'de>>(
    value: impl de::IntoDeserializer<'de, de::value::Error>,
    get: &dyn Fn(&str) -> Option<String>,
) -> (Result<T, de::value::Error>, Vec<String>) {
    let ctx = Interpolation::new(get);
    let r = T::deserialize(Interpolating {
        inner: value.into_deserializer(),
        ctx: &ctx,
    });
    (r, ctx.into_problems())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "NL" => Some("x\ny".into()),
            "NESTED" => Some("${A}".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_defaults_and_escapes() {
        assert_eq!(
            interpolate("a=${A} b=${B:-beta} c=$$ d=$x", env).unwrap(),
            "a=alpha b=beta c=$ d=$x"
        );
    }

    #[test]
    fn values_are_literal_and_never_rescanned() {
        assert_eq!(interpolate("${NL}", env).unwrap(), "x\ny");
        assert_eq!(interpolate("${NESTED}", env).unwrap(), "${A}");
    }

    #[test]
    fn collects_every_problem() {
        let e = interpolate("${X} ${Y:?set Y please} ${bad-name}", env).unwrap_err();
        assert_eq!(e.problems.len(), 3, "{:?}", e.problems);
        assert!(e.to_string().contains("set Y please"));
    }

    #[test]
    fn the_wrapper_interpolates_string_values_only() {
        let (r, problems) = through::<String>("pre-${A}", &env);
        assert_eq!(r.unwrap(), "pre-alpha");
        assert!(problems.is_empty());
        let (r, problems) = through::<String>("${MISSING}", &env);
        assert!(r.is_ok());
        assert_eq!(problems, ["${MISSING} is not set"]);
    }
}
