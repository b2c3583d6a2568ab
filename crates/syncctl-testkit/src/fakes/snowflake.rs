//! Stateful fake of the Snowflake SQL API v2 (`/api/v2/statements`), with enough of COPY INTO
//! behind it to test partitioned loads end to end.
//!
//! What it does like Snowflake:
//! * auth: `Authorization: Bearer …` with `X-Snowflake-Authorization-Token-Type`; key-pair
//!   JWTs are verified (RS256) against the configured public key, with the `iss`
//!   (`ACCOUNT.USER.SHA256:<fingerprint>`), `sub` and at-most-one-hour rules; OAuth tokens and
//!   programmatic access tokens are checked against configured values. Failures are 401.
//! * `POST /api/v2/statements?requestId&async=true` answers 202 with a handle; the statement
//!   finishes after N polls (`GET …/{handle}` answers 202 until then, then 200 or 422).
//!   A repeated `requestId` with `retry=true` returns the statement it already started
//!   instead of running it again (without `retry=true` it runs again, as documented).
//! * multi-statement requests (`MULTI_STATEMENT_COUNT` must match), `BEGIN`/`COMMIT` with
//!   rollback when a statement fails, child handles in `statementHandles`.
//! * COPY INTO computes its result table from a virtual file listing: `FILES`, `PATTERN`,
//!   `ON_ERROR` (`ABORT_STATEMENT` fails the statement with 422), `FORCE`, `PURGE`,
//!   `LOAD_UNCERTAIN_FILES` (files older than 64 days never loaded are skipped silently
//!   without it), `VALIDATION_MODE = RETURN_ERRORS`, and load metadata per table so a second
//!   COPY of the same files loads 0 files ("Copy executed with 0 files processed.").
//! * results are split into partitions (`partitionInfo`, `?partition=N`).
//! * `POST …/{handle}/cancel` cancels a running statement; later polls answer 422 `000604`.
//! * unknown routes answer 404 (never 501, which would make Prism mock instead).
//!
//! What it does not do: run arbitrary SQL (only COPY INTO, BEGIN/COMMIT/ROLLBACK and simple
//! `SELECT`s), unquoted `@stage` references outside a string literal, or real file parsing
//! (files are described by row counts and bad rows).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::services::ServiceEntry;

// TEST-ONLY RSA keys, generated for syncctl's test suite with openssl. They guard nothing;
// never register them with a real Snowflake user.

/// Test-only RSA private key (PKCS#8, unencrypted) whose public half the fake trusts.
pub const TEST_PRIVATE_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCkz9ai4jzqK/4n\n\
RjJNH4/bSZ1TYYMbHWfI84ALoHTucsf0uL6nu4h5HtFa00ok5BYN33MeHJSgOX4O\n\
IjnKf2+frLRv7pWdToQY6SzNyEGVY7GR9ia1vY7NgfGEyA31bVum5Q0nXwBYaufZ\n\
ANrRaXS9QKDiW1IVE20yvR2W81P6E9P/eGzPemvmA9eMenAHAC3DLDfcT7m6GWpv\n\
n2q0zbHlZX113/7MGKqQJ+/MXbHjNvWsEE62YeBtQKz5mZT0lxZN6p8gKLKCZNsp\n\
4iJAtk287MnQzqSZ0WARnv63zMLI+OSG8J5ysekI/MnIzZ0XQ7eiI6e3rl58YpGg\n\
l0/CcDWnAgMBAAECggEAP5AG1AgT/S5dVVFN2g+3oBeqjPtZII59NfOvaQyHvGTZ\n\
OEk+ApuhfTEFBhXiDQtIdC4/DBhyu76gnpvVlQMEDl2Bs3+dBS/AY4keZfj7Tj3G\n\
QKhh8oq6dgjNGGw9ce+svtes9Ie/rtoAM+GQAt68jrbLtbEJnaZB4aUtMcgDlbkL\n\
yVVHYy/F9g3+c4uvJ9xUJKfJMGTFKTNs6J+gS8kqu+nhi0C1WyuNhZ4Le+FaLs6W\n\
SwnXyW6c1ZGCO22Yxu29llOsBomZdi4Slg+4c7b4qjhddLxYNQ4D3ohquk8XSFLH\n\
mI0Z00G978dltII78ZaqhALo3W7EWws66ZGcI1KqHQKBgQDiFBvno4s+jwIeYuqY\n\
4jhntZOwGP0yqPadTfiuSpmIl1g1xuFGmzTSDxGjAkFrnJyspie0O8YY6k0zjLT+\n\
qj4FxeGIB0s4Vi4uB7cbk7fNxB3csJ8Wc9nm48Qb6y9JzdLpQXv0LxXv71RlyNQb\n\
79C7nDS2wfYxtlh84wKRZkEF6wKBgQC6n+tiR5ks7SUyqXywzqn3PJjpZhdL12xs\n\
ZQ4sRg0FHtO9t+phbrWkpSs2y+ULNeNa/+vd1cE/IYhk3D21sCsbW6KWX5SMPSm/\n\
8hIA9skHPqNeC8tV4Y6s/D5IhDBafteRgeJ+VWta1sQ71OjLDCrQSC3HbMhGrxUg\n\
YAJ81IL0NQKBgErZoYuFqBpkOq1Yzpcjfs1HXshU3a+iJVRbdlQuOrrwcLINUJSR\n\
2mEZwBsaKhK43V6D/G09xQ6GtFy2303Zi4NZypvA3nSeg9eVklg9BgPIRKLGj0Vd\n\
we0hx9H+gb+Lt6KmnaVw2XCA6o5weVlugss6onFHsn0vBAkFF9qP4kNVAoGBAKeF\n\
2BiPpssyUPrKM3jO+rlJdwXEM9NLnDMs/2z0sMlQ48dgqY8ufvU9oq38lyzaAa11\n\
H3gxYdfWtQW8wdQvQHK9bhRH1iOQ38JCfLDK1qefLazFL5B2+ckEYLBdoL4LMFyY\n\
WAUJjmWrddkzhIiH8oKm2Bk06A6zKWa3aGQ/qxGlAoGAUKLLcVmaocIBOb8PjwQV\n\
br2OsIHBHR58k0LzqkGT7GVP+uAip9KH0yYTXeZDqo78va+0f0inQI762SaqOTCs\n\
Ty69AEDCD/vEPZIB3826rjFAM0vnXKbKgXVLOv9CBEylpm0f6uaKMaqjZl5WuFvj\n\
b32fFPEdqoGpaMrlWQTzAb8=\n\
-----END PRIVATE KEY-----\n";

/// The same test-only key as encrypted PKCS#8 (PBES2, AES-256-CBC); passphrase [`TEST_KEY_PASSPHRASE`].
pub const TEST_ENCRYPTED_PRIVATE_KEY_PEM: &str = "\
-----BEGIN ENCRYPTED PRIVATE KEY-----\n\
MIIFLTBXBgkqhkiG9w0BBQ0wSjApBgkqhkiG9w0BBQwwHAQIh4hrqDHwQXQCAggA\n\
MAwGCCqGSIb3DQIJBQAwHQYJYIZIAWUDBAEqBBDpAabOaTIqyNKi7j1CEblJBIIE\n\
0EYCrj3bdnjzj5kWd8425CkNRpTTf6mAtsKCSsmG502LeJsoro6GlXsyvhhTAyu0\n\
w8aTAMpcCvTeNdn0yNAtiV1aVaG3BJMRqBFOO1ljomRdN2efpYsn7YLmdQkE9EoB\n\
8rzGqU0WWPlcOgBXo0SGSLq89SiJtvUUkQEIyA/8+vbhUefKIgtkiikYjnzpg5VF\n\
HZY2ZyfEBttuU1V+O1OkzXTdOOEuGJP6aDWgHf6ZwPXw27qP3I58IBwW0UO/91uV\n\
P9dTtv+0RoCA7k0KFME9XV1PCrqRo0fXfV/4BFDwocSsVTkwNGLLgyHWFrqUALPs\n\
YprdyVzI8FcKGkzWKnBgGL379Z6tHsTWNfvvht7qA1o9pAG8sp4EIN3+0Qp3CYgr\n\
/JgKWCdKNqht7yQB906K6diUa1pJIBwW69EWbblqQc1WXg84I+ykIzQQY5caH8N9\n\
Rm5R9SKNd6zr9kET4r8J9BceQLtTbVtQxBPklz7XIT9RqVM4sQmn+pvwcRzqFDXV\n\
Lkzq47cDCgi0rg1+yK5I80xjF+8YQfhW5v4Sd+8ZtwWySoWdWbPK+ZB30akwnJlM\n\
zYWAORj57M+8vdcbiEaN78KrT05Itwq9d2QRVAnSZ6XuuTQpq5u80aJlNiU2N7z1\n\
S1IokOYmDmkbIBHNdqjlEQJJvbGXHFqzG/C8lnjez859hVP2jS3XEDz+cNvCqh/Y\n\
0AY7dAdTgS6aUZsg5lb6lQHlDxgkByhV7cp9Q0tqQoyhsJCY8rVyChVARaN/9Mn/\n\
z5ueWd5R3YN6grTmGJJFmQPz5nNwroh0GESEaE3KNKMzG+o0kana+6sMS6U5S9Lk\n\
SEr8WsjFfnl7qVOH93GTcv2qLZ1n9fWnOqA90Himr/bL//UHe7fOdc9oDk6gKJly\n\
i7BiEjopzqW2Mr9/dlEwAcOG52brqMlA5+upwcpkGspDrwzoyG7jmOR1qsO8oViJ\n\
dZjhT9wQlgTXhJ+pX89uW+657OmAq317cjZ0uK2H31k7O0VfJ1evbVAFPQyf3wNL\n\
79w+4Jttd1UAqUPWdQSVIDnjsElwvlbHBsyPd0dUj8AZ9n75NRWxeyBaJuMA/1nY\n\
ggSNKbqp/0WCOpClyCbs/9vHoOOw8Cn8tYhHRz2yv1qj1gX0Y8Y2yqkuwjcWX+8w\n\
P2KJ+XGsDdl2JpnL/K/srVsz+5MENOxHkoDEvpS+OXFlJkcnRfKErofcZ36Y7l4V\n\
sVbTBjgmfFQXZ2Ct+YSzVJc49BW5gkLb6qeIxyaysPF5ocFJpttAKd8IVRTT9cgs\n\
RjhVcs6HZONTaweeJ6kJSyuWoQpL+4k9YyLlLWiIC4AzSQIcxmglMvQ8R0KI86F/\n\
2CEcX3F1xL50inhPMP9bOH3dbtfuczi4VdDc+tdR8i0rx/Mv3R3TYaGmjAOocsr8\n\
JxU1BTO7zV/yHy9uq0PBhyF0IxdN33hEflJTAWMlYZCunTAebt95vYhiW/8pHAPl\n\
i4PgwtSKwMWoL59AAy2rsPf/WkB6i/2Z/TxpyG9SN0g/ONF8VqJ0c6Aej5mAYmXP\n\
fLcdko2AtclA0RaipjsgAhIgrFvGvE5019vt1YftLdqjT2Y3zp6qhZwKnRkI/5qf\n\
T0PpqpRThg062EJ7m0TEPZoArExfv32EPMjtktfFIcnR\n\
-----END ENCRYPTED PRIVATE KEY-----\n";

/// The passphrase of [`TEST_ENCRYPTED_PRIVATE_KEY_PEM`].
pub const TEST_KEY_PASSPHRASE: &str = "test-only-passphrase";

/// The same test-only key in PKCS#1 form (`BEGIN RSA PRIVATE KEY`).
pub const TEST_PKCS1_PRIVATE_KEY_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----\n\
MIIEowIBAAKCAQEApM/WouI86iv+J0YyTR+P20mdU2GDGx1nyPOAC6B07nLH9Li+\n\
p7uIeR7RWtNKJOQWDd9zHhyUoDl+DiI5yn9vn6y0b+6VnU6EGOkszchBlWOxkfYm\n\
tb2OzYHxhMgN9W1bpuUNJ18AWGrn2QDa0Wl0vUCg4ltSFRNtMr0dlvNT+hPT/3hs\n\
z3pr5gPXjHpwBwAtwyw33E+5uhlqb59qtM2x5WV9dd/+zBiqkCfvzF2x4zb1rBBO\n\
tmHgbUCs+ZmU9JcWTeqfICiygmTbKeIiQLZNvOzJ0M6kmdFgEZ7+t8zCyPjkhvCe\n\
crHpCPzJyM2dF0O3oiOnt65efGKRoJdPwnA1pwIDAQABAoIBAD+QBtQIE/0uXVVR\n\
TdoPt6AXqoz7WSCOfTXzr2kMh7xk2ThJPgKboX0xBQYV4g0LSHQuPwwYcru+oJ6b\n\
1ZUDBA5dgbN/nQUvwGOJHmX4+049xkCoYfKKunYIzRhsPXHvrL7XrPSHv67aADPh\n\
kALevI62y7WxCZ2mQeGlLTHIA5W5C8lVR2MvxfYN/nOLryfcVCSnyTBkxSkzbOif\n\
oEvJKrvp4YtAtVsrjYWeC3vhWi7OlksJ18lunNWRgjttmMbtvZZTrAaJmXYuEpYP\n\
uHO2+Ko4XXS8WDUOA96IarpPF0hSx5iNGdNBve/HZbSCO/GWqoQC6N1uxFsLOumR\n\
nCNSqh0CgYEA4hQb56OLPo8CHmLqmOI4Z7WTsBj9Mqj2nU34rkqZiJdYNcbhRps0\n\
0g8RowJBa5ycrKYntDvGGOpNM4y0/qo+BcXhiAdLOFYuLge3G5O3zcQd3LCfFnPZ\n\
5uPEG+svSc3S6UF79C8V7+9UZcjUG+/Qu5w0tsH2MbZYfOMCkWZBBesCgYEAup/r\n\
YkeZLO0lMql8sM6p9zyY6WYXS9dsbGUOLEYNBR7TvbfqYW61pKUrNsvlCzXjWv/r\n\
3dXBPyGIZNw9tbArG1uill+UjD0pv/ISAPbJBz6jXgvLVeGOrPw+SIQwWn7XkYHi\n\
flVrWtbEO9Toywwq0Egtx2zIRq8VIGACfNSC9DUCgYBK2aGLhagaZDqtWM6XI37N\n\
R17IVN2voiVUW3ZULjq68HCyDVCUkdphGcAbGioSuN1eg/xtPcUOhrRctt9N2YuD\n\
WcqbwN50noPXlZJYPQYDyESixo9FXcHtIcfR/oG/i7eipp2lcNlwgOqOcHlZboLL\n\
OqJxR7J9LwQJBRfaj+JDVQKBgQCnhdgYj6bLMlD6yjN4zvq5SXcFxDPTS5wzLP9s\n\
9LDJUOPHYKmPLn71PaKt/Jcs2gGtdR94MWHX1rUFvMHUL0ByvW4UR9YjkN/CQnyw\n\
ytanny2sxS+QdvnJBGCwXaC+CzBcmFgFCY5lq3XZM4SIh/KCptgZNOgOsylmt2hk\n\
P6sRpQKBgFCiy3FZmqHCATm/D48EFW69jrCBwR0efJNC86pBk+xlT/rgIqfSh9Mm\n\
E13mQ6qO/L2vtH9Ip0CO+tkmqjkwrE8uvQBAwg/7xD2SAd/Nuq4xQDNL51ymyoF1\n\
Szr/QgRMpaZtH+rmijGqo2ZeVrhb4299nxTxHaqBqWjK5VkE8wG/\n\
-----END RSA PRIVATE KEY-----\n";

/// The public half of the test-only key (what `ALTER USER … SET RSA_PUBLIC_KEY` would hold).
pub const TEST_PUBLIC_KEY_PEM: &str = "\
-----BEGIN PUBLIC KEY-----\n\
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEApM/WouI86iv+J0YyTR+P\n\
20mdU2GDGx1nyPOAC6B07nLH9Li+p7uIeR7RWtNKJOQWDd9zHhyUoDl+DiI5yn9v\n\
n6y0b+6VnU6EGOkszchBlWOxkfYmtb2OzYHxhMgN9W1bpuUNJ18AWGrn2QDa0Wl0\n\
vUCg4ltSFRNtMr0dlvNT+hPT/3hsz3pr5gPXjHpwBwAtwyw33E+5uhlqb59qtM2x\n\
5WV9dd/+zBiqkCfvzF2x4zb1rBBOtmHgbUCs+ZmU9JcWTeqfICiygmTbKeIiQLZN\n\
vOzJ0M6kmdFgEZ7+t8zCyPjkhvCecrHpCPzJyM2dF0O3oiOnt65efGKRoJdPwnA1\n\
pwIDAQAB\n\
-----END PUBLIC KEY-----\n";

/// A second test-only key the fake does not trust (for auth-failure tests).
pub const UNTRUSTED_PRIVATE_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC2IqG0ZlSz26Uk\n\
rlGGiDe2nxGPqJsT+5izFyc1p+PaUjaKVgKRZJFtMQDaDQ2Q+hHuIwrGJVQDFwiU\n\
Al1B6I71ikcf9vLpClticI2MZpUEhw5sJ12zj+NaTiGPVkNYTKNJA9s6Sjkwr2c3\n\
yam7dF/zEK0PHqV1BYQoLSeXpQER+juYCV19VReNBy/brmxmTjh5c26dGHcvKPnz\n\
8pUofxnwilftktCxMuXYr/N4ijxIuQaiT7eZOc0Jg2t+F4ohRSllOSANwbsCKN5U\n\
qfSqi0XKhHfKGeTWMbrRXL5iR9ka2LBSZDVv8YFjtk19Ig3VJZU7DBQ31lbnDOiY\n\
wYtJYXA1AgMBAAECggEAC2xvpP94F5HSsVLHpT7885TVhqOmGmJA6RauLGTb2zEl\n\
35ZWceUTY/xbV9HSxIGSx1NmVRg5RTpYHORrEfuyn77tCBm2kZxHMAzsK96xQQfx\n\
hSIQ8/a15U+aNkHMVoj0Atvdj7HhFWci+7JH1YyOihHFMPoUmZrfd5+haJb+UrC6\n\
eRMTWCv9Z3KXMIXypmDeplXG94sVIyh/tjQ3N78RlWGCSUXvoTrFhclu4gowZ4AY\n\
JwGLNNTMCZ35MJ8H+boZX8WwbKLrSy41C+cwRRWAjPMhs+PkTlsrmQn6sbQ6HvKG\n\
7fAS8JQj4Kodx0hN7dJvTw17EgAqkx/3ZCWzwzwzHwKBgQDvrscP1GZPg+ioCFmJ\n\
J4NYmlFA2gHVkAm8OsHZjfxjsO5hUm5pAeHlstEU5Dj+DTdWZ+GpocWPF1amvy34\n\
sMcvCoYa5WQLO9bGCD8m9ojeDNaI0DBBLTRHnKcHT9yKj8+Gcn4FZehK5OELQ1pQ\n\
xE98fWJ2TZ2Cju0HOyc62HsifwKBgQDCiOjYB5OpZeKL/bxCyvuDV7YS5k3sn0zm\n\
bQ7jhu/eDFjwrAGQz2WBh67vTZgu1m1QP84Lk56pmfyDkHgetFdLyvRG35oiHRtu\n\
NMxyclmOmzo9YoFXCnV/JolTkalBNFVeyINTl1/Yrvm6FsYjIlBvxvyIzabvWvyh\n\
DhDmaf0rSwKBgDpvWCTp2c/FDzH4ZyvjMEinxuuSuyPALD9x69UIouIDPvsHR9fe\n\
F58Sy5rWUXbO7hDo3sGmqS3LuNqKfcDGCKnVXQCtsIh0nFZHqG3taU0JwDw21azu\n\
QnK7JJXJyLEXgrb6rvLN96ZayuseDqTmV6K4RwskvSQZiHxc1aGpKcwtAoGBAKuz\n\
E3C5H0eAubg9uBBsABopLHb59wVGhSVMVLvVuZkO5OFnr+oUY88z5t8oaY3NjKYr\n\
6rylCoE/fHTS6nKPUg1/kKONcAl0D2XyDBFnhEwuDfVoICim/pW/ea3c/rqiakdC\n\
S0dYcCxcI+Zve2o/OyetRe+pNBJHCHtOYvQ70EyJAoGAfyvLJpasa1kxm81PczVP\n\
f4cHnRbpPK9gNxvbtApbbNMmZp1lBYjtYMB6U2oGxkZqr6XdC3N1w/GTWiD2jVrF\n\
8oy5wUKPRZlw2Ye1tA5MWjTvISYXxv8MY4UBouTwmCWuVBkSFxpwoCRtii86rpV/\n\
vM7e8OglMnhZ6TTiEtjWb5A=\n\
-----END PRIVATE KEY-----\n";

/// The `syncctl-fakes serve` entries this fake provides.
#[must_use]
pub fn services() -> Vec<ServiceEntry> {
    vec![ServiceEntry {
        name: "snowflake",
        about: "Snowflake SQL API v2 with COPY INTO over a virtual data lake (account DEMO-ACCT, user SYNCCTL, the testkit key)",
        router: demo_router,
    }]
}

fn demo_router() -> Router {
    let today = chrono::Utc::now().date_naive();
    let mut b = SnowflakeFake::builder()
        .account("DEMO-ACCT")
        .user("SYNCCTL")
        .public_key_pem(TEST_PUBLIC_KEY_PEM)
        .programmatic_access_token("demo-pat-token")
        .table("RAW.EVENTS.EVENTS")
        .storage_integration("DATALAKE_INT")
        .stage("RAW.EVENTS.LAKE", "s3://biz-datalake-dev/")
        .polls_before_done(2);
    for back in 0..7 {
        let d = today - chrono::Duration::days(back);
        for part in 1..=3 {
            b = b.file(FakeFile::new(
                format!("s3://biz-datalake-dev/events/date={d}/part-{part:04}.json"),
                100 * part,
            ));
        }
    }
    b.build().router()
}

// ---------------------------------------------------------------------------------------------
// SQL text: a lexer with Snowflake's literal rules, statement splitting and a COPY parser.
// ---------------------------------------------------------------------------------------------

/// Snowflake SQL lexing and the COPY INTO grammar the fake understands. Public so that the
/// client's property tests can check generated SQL against an independent reader.
pub mod sql {
    /// One token.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Token {
        /// An unquoted word (keyword or identifier), as written.
        Word(String),
        /// A double-quoted identifier, unescaped.
        QuotedIdent(String),
        /// A string literal (`'…'` or `$$…$$`), unescaped.
        Str(String),
        /// A number.
        Number(String),
        /// Punctuation.
        Punct(char),
    }

    /// Why SQL text could not be read.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SqlError {
        /// Where (byte offset).
        pub position: usize,
        /// What went wrong.
        pub message: String,
    }

    /// Splits SQL into tokens the way Snowflake does: `--` and `/* */` comments, `'…'`
    /// literals with backslash escapes and `''`, `$$…$$` literals, `"…"` identifiers with `""`.
    ///
    /// # Errors
    /// An unterminated literal, identifier or comment, or a character Snowflake would not
    /// accept there.
    pub fn tokenize(sql: &str) -> Result<Vec<Token>, SqlError> {
        let chars: Vec<(usize, char)> = sql.char_indices().collect();
        let mut out = Vec::new();
        let mut i = 0;
        let err = |pos: usize, m: &str| SqlError {
            position: pos,
            message: m.to_owned(),
        };
        while i < chars.len() {
            let (pos, c) = chars[i];
            let next = chars.get(i + 1).map(|(_, c)| *c);
            if c.is_whitespace() {
                i += 1;
            } else if (c == '-' && next == Some('-')) || (c == '/' && next == Some('/')) {
                while i < chars.len() && chars[i].1 != '\n' {
                    i += 1;
                }
            } else if c == '/' && next == Some('*') {
                i += 2;
                loop {
                    if i + 1 >= chars.len() {
                        return Err(err(pos, "unterminated comment"));
                    }
                    if chars[i].1 == '*' && chars[i + 1].1 == '/' {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            } else if c == '\'' {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&(_, c)) = chars.get(i) else {
                        return Err(err(pos, "unterminated string literal"));
                    };
                    match c {
                        '\\' => {
                            let Some(&(_, e)) = chars.get(i + 1) else {
                                return Err(err(pos, "unterminated string literal"));
                            };
                            i += 2;
                            match e {
                                'n' => s.push('\n'),
                                't' => s.push('\t'),
                                'r' => s.push('\r'),
                                'b' => s.push('\u{8}'),
                                'f' => s.push('\u{c}'),
                                '0' => s.push('\0'),
                                other => s.push(other),
                            }
                        }
                        '\'' => {
                            if chars.get(i + 1).map(|(_, c)| *c) == Some('\'') {
                                s.push('\'');
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        c => {
                            s.push(c);
                            i += 1;
                        }
                    }
                }
                out.push(Token::Str(s));
            } else if c == '$' && next == Some('$') {
                let rest: String = chars[i + 2..].iter().map(|(_, c)| *c).collect();
                let end = rest
                    .find("$$")
                    .ok_or_else(|| err(pos, "unterminated $$ literal"))?;
                out.push(Token::Str(rest[..end].to_owned()));
                i += 2 + rest[..end].chars().count() + 2;
            } else if c == '"' {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(&(_, c)) = chars.get(i) else {
                        return Err(err(pos, "unterminated quoted identifier"));
                    };
                    if c == '"' {
                        if chars.get(i + 1).map(|(_, c)| *c) == Some('"') {
                            s.push('"');
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    } else {
                        s.push(c);
                        i += 1;
                    }
                }
                out.push(Token::QuotedIdent(s));
            } else if c.is_ascii_alphabetic() || c == '_' {
                let mut s = String::new();
                while let Some(&(_, c)) = chars.get(i) {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '$' {
                        s.push(c);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Token::Word(s));
            } else if c.is_ascii_digit() {
                let mut s = String::new();
                while let Some(&(_, c)) = chars.get(i) {
                    if c.is_ascii_digit() || c == '.' {
                        s.push(c);
                        i += 1;
                    } else {
                        break;
                    }
                }
                out.push(Token::Number(s));
            } else if "().,;=@/%~*+-:<>".contains(c) {
                out.push(Token::Punct(c));
                i += 1;
            } else {
                return Err(err(pos, &format!("unexpected character {c:?}")));
            }
        }
        Ok(out)
    }

    /// Splits tokens into statements at top-level `;` (empty statements dropped).
    #[must_use]
    pub fn split_statements(tokens: Vec<Token>) -> Vec<Vec<Token>> {
        let mut out = vec![Vec::new()];
        for t in tokens {
            if t == Token::Punct(';') {
                out.push(Vec::new());
            } else if let Some(last) = out.last_mut() {
                last.push(t);
            }
        }
        out.retain(|s| !s.is_empty());
        out
    }

    /// An identifier as Snowflake resolves it: unquoted upper-cased, quoted kept.
    #[must_use]
    pub fn ident_name(t: &Token) -> Option<String> {
        match t {
            Token::Word(w) => Some(w.to_ascii_uppercase()),
            Token::QuotedIdent(q) => Some(q.clone()),
            _ => None,
        }
    }

    /// A value of a COPY option.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum OptionValue {
        /// A word, number or identifier path (`JSON`, `TRUE`, `10`, `"DB"."SCH"."FMT"`),
        /// with identifier parts resolved and joined by `.`.
        Word(String),
        /// A string literal, unescaped.
        Str(String),
        /// A parenthesised group, as tokens.
        Group(Vec<Token>),
    }

    /// A parsed `COPY INTO <table> FROM '<location>' …`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CopyCommand {
        /// The table's name parts, resolved.
        pub table: Vec<String>,
        /// The location literal, unescaped.
        pub from: String,
        /// Options in order, keys upper-cased.
        pub options: Vec<(String, OptionValue)>,
    }

    impl CopyCommand {
        /// An option's value.
        #[must_use]
        pub fn option(&self, key: &str) -> Option<&OptionValue> {
            self.options.iter().find(|(k, _)| k == key).map(|(_, v)| v)
        }

        /// A word option upper-cased (`ON_ERROR = CONTINUE` → `CONTINUE`); string values
        /// (`'SKIP_FILE_10%'`) are returned as they are.
        #[must_use]
        pub fn word(&self, key: &str) -> Option<String> {
            match self.option(key)? {
                OptionValue::Word(w) => Some(w.to_ascii_uppercase()),
                OptionValue::Str(s) => Some(s.to_ascii_uppercase()),
                OptionValue::Group(_) => None,
            }
        }

        /// A boolean option.
        #[must_use]
        pub fn flag(&self, key: &str) -> bool {
            self.word(key).is_some_and(|w| w == "TRUE")
        }

        /// `KEY = 'value'` pairs inside a group option (`CREDENTIALS`, `FILE_FORMAT`).
        #[must_use]
        pub fn group_pairs(&self, key: &str) -> Vec<(String, Token)> {
            let Some(OptionValue::Group(tokens)) = self.option(key) else {
                return Vec::new();
            };
            let mut out = Vec::new();
            let mut i = 0;
            while i + 2 < tokens.len() {
                if let (Token::Word(k), Token::Punct('=')) = (&tokens[i], &tokens[i + 1]) {
                    out.push((k.to_ascii_uppercase(), tokens[i + 2].clone()));
                    i += 3;
                } else {
                    i += 1;
                }
            }
            out
        }

        /// The string literals inside a group option (`FILES = ('a', 'b')`).
        #[must_use]
        pub fn group_strings(&self, key: &str) -> Vec<String> {
            match self.option(key) {
                Some(OptionValue::Group(tokens)) => tokens
                    .iter()
                    .filter_map(|t| match t {
                        Token::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            }
        }
    }

    /// The options COPY INTO accepts.
    const COPY_OPTIONS: [&str; 17] = [
        "STORAGE_INTEGRATION",
        "CREDENTIALS",
        "ENCRYPTION",
        "FILES",
        "PATTERN",
        "FILE_FORMAT",
        "ON_ERROR",
        "SIZE_LIMIT",
        "PURGE",
        "RETURN_FAILED_ONLY",
        "MATCH_BY_COLUMN_NAME",
        "INCLUDE_METADATA",
        "ENFORCE_LENGTH",
        "TRUNCATECOLUMNS",
        "FORCE",
        "LOAD_UNCERTAIN_FILES",
        "VALIDATION_MODE",
    ];

    /// Parses one COPY INTO statement.
    ///
    /// # Errors
    /// A message like Snowflake's "syntax error … unexpected …".
    pub fn parse_copy(tokens: &[Token]) -> Result<CopyCommand, String> {
        let mut i = 0;
        let word = |i: usize, w: &str| matches!(tokens.get(i), Some(Token::Word(x)) if x.eq_ignore_ascii_case(w));
        let unexpected = |i: usize| match tokens.get(i) {
            Some(t) => format!("syntax error: unexpected {t:?}"),
            None => "syntax error: unexpected end of statement".to_owned(),
        };
        if !(word(0, "COPY") && word(1, "INTO")) {
            return Err(unexpected(0));
        }
        i += 2;
        let mut table = Vec::new();
        loop {
            let part = tokens
                .get(i)
                .and_then(ident_name)
                .ok_or_else(|| unexpected(i))?;
            table.push(part);
            i += 1;
            if tokens.get(i) == Some(&Token::Punct('.')) {
                i += 1;
            } else {
                break;
            }
        }
        if table.len() > 3 {
            return Err("syntax error: too many name parts".into());
        }
        if !word(i, "FROM") {
            return Err(unexpected(i));
        }
        i += 1;
        let from = match tokens.get(i) {
            Some(Token::Str(s)) => s.clone(),
            _ => return Err(unexpected(i)),
        };
        i += 1;
        let mut options: Vec<(String, OptionValue)> = Vec::new();
        while i < tokens.len() {
            let key = match tokens.get(i) {
                Some(Token::Word(w)) if COPY_OPTIONS.contains(&w.to_ascii_uppercase().as_str()) => {
                    w.to_ascii_uppercase()
                }
                _ => return Err(unexpected(i)),
            };
            if options.iter().any(|(k, _)| *k == key) {
                return Err(format!("syntax error: duplicate option {key}"));
            }
            i += 1;
            if tokens.get(i) != Some(&Token::Punct('=')) {
                return Err(unexpected(i));
            }
            i += 1;
            let value = match tokens.get(i) {
                Some(Token::Punct('(')) => {
                    let mut depth = 0usize;
                    let start = i + 1;
                    loop {
                        match tokens.get(i) {
                            Some(Token::Punct('(')) => depth += 1,
                            Some(Token::Punct(')')) => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            Some(_) => {}
                            None => return Err("syntax error: unclosed (".into()),
                        }
                        i += 1;
                    }
                    let group = tokens[start..i].to_vec();
                    i += 1;
                    OptionValue::Group(group)
                }
                Some(Token::Str(s)) => {
                    i += 1;
                    OptionValue::Str(s.clone())
                }
                Some(Token::Number(n)) => {
                    i += 1;
                    OptionValue::Word(n.clone())
                }
                Some(t @ (Token::Word(_) | Token::QuotedIdent(_))) => {
                    let mut parts = vec![ident_name(t).unwrap_or_default()];
                    i += 1;
                    while tokens.get(i) == Some(&Token::Punct('.')) {
                        i += 1;
                        parts.push(
                            tokens
                                .get(i)
                                .and_then(ident_name)
                                .ok_or_else(|| unexpected(i))?,
                        );
                        i += 1;
                    }
                    OptionValue::Word(parts.join("."))
                }
                _ => return Err(unexpected(i)),
            };
            options.push((key, value));
        }
        Ok(CopyCommand {
            table,
            from,
            options,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The virtual data lake and the account's state.
// ---------------------------------------------------------------------------------------------

/// A row the fake's "parser" rejects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRow {
    /// 1-based line in the file.
    pub line: u64,
    /// The column the error is in.
    pub column: String,
    /// The message (`Error parsing JSON: unknown keyword "nul"`).
    pub error: String,
}

/// A file in the virtual data lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeFile {
    /// Full URL (`s3://bucket/events/date=2025-10-30/part-0001.json`).
    pub url: String,
    /// Rows in the file.
    pub rows: u64,
    /// Rows that fail to parse.
    pub bad_rows: Vec<BadRow>,
    /// Days since the file was last modified (over 64 makes it "uncertain").
    pub age_days: u32,
}

impl FakeFile {
    /// A clean file with `rows` rows, modified today.
    #[must_use]
    pub fn new(url: impl Into<String>, rows: u64) -> Self {
        Self {
            url: url.into(),
            rows,
            bad_rows: Vec::new(),
            age_days: 0,
        }
    }

    /// Adds a row that fails to parse.
    #[must_use]
    pub fn with_bad_row(mut self, line: u64, column: &str, error: &str) -> Self {
        self.bad_rows.push(BadRow {
            line,
            column: column.to_owned(),
            error: error.to_owned(),
        });
        self
    }

    /// Makes the file `days` old.
    #[must_use]
    pub fn aged(mut self, days: u32) -> Self {
        self.age_days = days;
        self
    }
}

/// A table's rows and load metadata.
#[derive(Debug, Clone, Default)]
struct Table {
    rows: u64,
    /// Files loaded into this table (Snowflake's load metadata).
    loaded: BTreeSet<String>,
}

/// What a transaction can change.
#[derive(Debug, Clone, Default)]
struct Store {
    tables: BTreeMap<String, Table>,
    files: BTreeMap<String, FakeFile>,
}

#[derive(Debug, Clone, Default)]
struct Config {
    account: String,
    user: String,
    /// Fingerprint (`SHA256:…`) → PEM public key.
    keys: Vec<(String, String)>,
    oauth_tokens: Vec<String>,
    pats: Vec<String>,
    stages: BTreeMap<String, String>,
    integrations: BTreeSet<String>,
    polls_before_done: u32,
    rows_per_partition: usize,
    gzip_partitions: bool,
    default_warehouse: Option<String>,
    off_spec: bool,
}

/// A SQL error as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeSqlError {
    /// Snowflake's code.
    pub code: String,
    /// The SQL state.
    pub sql_state: String,
    /// The message.
    pub message: String,
}

fn sql_error(code: &str, sql_state: &str, message: impl Into<String>) -> FakeSqlError {
    FakeSqlError {
        code: code.to_owned(),
        sql_state: sql_state.to_owned(),
        message: message.into(),
    }
}

/// A result table.
#[derive(Debug, Clone, Default)]
struct Output {
    columns: Vec<(&'static str, &'static str)>,
    rows: Vec<Vec<Option<String>>>,
    statement_handles: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
enum StmtState {
    Running,
    Done(Output),
    Failed(FakeSqlError),
    Cancelled,
}

#[derive(Debug, Clone)]
struct Stmt {
    sql: String,
    count: usize,
    polls_left: u32,
    state: StmtState,
    database: Option<String>,
    schema: Option<String>,
    warehouse: Option<String>,
    created_on: i64,
}

/// One POST the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// `requestId`.
    pub request_id: Option<String>,
    /// Whether `retry=true` was sent.
    pub retry: bool,
    /// The handle answered.
    pub handle: String,
    /// Whether this POST started an execution (false when a retry found the earlier one).
    pub executed: bool,
    /// `MULTI_STATEMENT_COUNT` as sent.
    pub statement_count: Option<u64>,
    /// The body's warehouse, role, database and schema.
    pub context: [Option<String>; 4],
    /// `parameters.query_tag`.
    pub query_tag: Option<String>,
}

/// What a JWT the fake accepted said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSeen {
    /// `iss`.
    pub iss: String,
    /// `sub`.
    pub sub: String,
    /// `iat`.
    pub iat: i64,
    /// `exp`.
    pub exp: i64,
}

#[derive(Debug, Default)]
struct Inner {
    cfg: Config,
    store: Store,
    statements: HashMap<String, Stmt>,
    by_request: HashMap<String, String>,
    submissions: Vec<Submission>,
    copy_executions: usize,
    cancelled: Vec<String>,
    jwts: Vec<JwtSeen>,
    token_types: Vec<String>,
}

/// The fake. Cheap to clone; all clones share state.
#[derive(Debug, Clone, Default)]
pub struct SnowflakeFake {
    inner: Arc<Mutex<Inner>>,
}

/// Builds a [`SnowflakeFake`].
#[derive(Debug, Default)]
pub struct SnowflakeFakeBuilder {
    inner: Inner,
}

impl SnowflakeFakeBuilder {
    /// The account (as it appears in JWTs, e.g. `MYORG-ACCT`).
    #[must_use]
    pub fn account(mut self, a: &str) -> Self {
        self.inner.cfg.account = a.to_ascii_uppercase();
        self
    }
    /// The user key-pair JWTs must name.
    #[must_use]
    pub fn user(mut self, u: &str) -> Self {
        self.inner.cfg.user = u.to_ascii_uppercase();
        self
    }
    /// Trusts a public key (PEM `BEGIN PUBLIC KEY`) for key-pair JWTs.
    #[must_use]
    pub fn public_key_pem(mut self, pem: &str) -> Self {
        self.inner
            .cfg
            .keys
            .push((public_key_fingerprint(pem), pem.to_owned()));
        self
    }
    /// Accepts an OAuth token.
    #[must_use]
    pub fn oauth_token(mut self, t: &str) -> Self {
        self.inner.cfg.oauth_tokens.push(t.to_owned());
        self
    }
    /// Accepts a programmatic access token.
    #[must_use]
    pub fn programmatic_access_token(mut self, t: &str) -> Self {
        self.inner.cfg.pats.push(t.to_owned());
        self
    }
    /// Creates a table (`DB.SCHEMA.TABLE`, as Snowflake stores the names).
    #[must_use]
    pub fn table(mut self, name: &str) -> Self {
        self.inner
            .store
            .tables
            .insert(name.to_owned(), Table::default());
        self
    }
    /// Creates a named external stage over `url` (`DB.SCHEMA.STAGE`).
    #[must_use]
    pub fn stage(mut self, name: &str, url: &str) -> Self {
        self.inner
            .cfg
            .stages
            .insert(name.to_owned(), url.to_owned());
        self
    }
    /// Creates a storage integration.
    #[must_use]
    pub fn storage_integration(mut self, name: &str) -> Self {
        self.inner.cfg.integrations.insert(name.to_owned());
        self
    }
    /// Adds a file to the lake.
    #[must_use]
    pub fn file(mut self, f: FakeFile) -> Self {
        self.inner.store.files.insert(f.url.clone(), f);
        self
    }
    /// Statements answer 202 to this many polls before finishing (default 1).
    #[must_use]
    pub fn polls_before_done(mut self, n: u32) -> Self {
        self.inner.cfg.polls_before_done = n;
        self
    }
    /// Sends result partitions after the first with `Content-Encoding: gzip`, as Snowflake
    /// does (it serves them compressed, whatever the request's `Accept-Encoding`).
    #[must_use]
    pub fn gzip_partitions(mut self) -> Self {
        self.inner.cfg.gzip_partitions = true;
        self
    }

    /// Rows per result partition (default 1000).
    #[must_use]
    pub fn rows_per_partition(mut self, n: usize) -> Self {
        self.inner.cfg.rows_per_partition = n.max(1);
        self
    }
    /// The user's default warehouse (default `COMPUTE_WH`; `None` makes a request without
    /// `warehouse` fail like Snowflake does).
    #[must_use]
    pub fn default_warehouse(mut self, w: Option<&str>) -> Self {
        self.inner.cfg.default_warehouse = w.map(str::to_owned);
        self
    }
    /// Canary mode: 202 answers carry `statementHandle` as a number, breaking the spec.
    #[must_use]
    pub fn off_spec(mut self) -> Self {
        self.inner.cfg.off_spec = true;
        self
    }
    /// The fake.
    #[must_use]
    pub fn build(self) -> SnowflakeFake {
        SnowflakeFake {
            inner: Arc::new(Mutex::new(self.inner)),
        }
    }
}

impl SnowflakeFake {
    /// Starts a builder with one poll before completion and 1000 rows per partition.
    #[must_use]
    pub fn builder() -> SnowflakeFakeBuilder {
        let mut b = SnowflakeFakeBuilder::default();
        b.inner.cfg.polls_before_done = 1;
        b.inner.cfg.rows_per_partition = 1000;
        b.inner.cfg.default_warehouse = Some("COMPUTE_WH".into());
        b
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The router to serve (wrap it in a `FakeServer`).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v2/statements", post(submit))
            .route("/api/v2/statements/{handle}", get(status))
            .route("/api/v2/statements/{handle}/cancel", post(cancel))
            .fallback(|| async {
                (
                    StatusCode::NOT_FOUND,
                    axum::Json(serde_json::json!({"code": "390404", "message": "Not found"})),
                )
            })
            .with_state(self.clone())
    }

    /// Adds a file while the fake runs.
    pub fn add_file(&self, f: FakeFile) {
        self.lock().store.files.insert(f.url.clone(), f);
    }
    /// Rows in a table.
    #[must_use]
    pub fn table_rows(&self, table: &str) -> u64 {
        self.lock().store.tables.get(table).map_or(0, |t| t.rows)
    }
    /// Files a table's load metadata lists as loaded.
    #[must_use]
    pub fn loaded_files(&self, table: &str) -> Vec<String> {
        self.lock()
            .store
            .tables
            .get(table)
            .map(|t| t.loaded.iter().cloned().collect())
            .unwrap_or_default()
    }
    /// URLs still in the lake (PURGE removes loaded ones).
    #[must_use]
    pub fn lake_files(&self) -> Vec<String> {
        self.lock().store.files.keys().cloned().collect()
    }
    /// How many COPY statements were executed (a deduplicated retry executes nothing).
    #[must_use]
    pub fn copy_executions(&self) -> usize {
        self.lock().copy_executions
    }
    /// Every statement POST.
    #[must_use]
    pub fn submissions(&self) -> Vec<Submission> {
        self.lock().submissions.clone()
    }
    /// The SQL text of every statement submitted, in order.
    #[must_use]
    pub fn statement_texts(&self) -> Vec<String> {
        let inner = self.lock();
        inner
            .submissions
            .iter()
            .filter_map(|s| inner.statements.get(&s.handle).map(|st| st.sql.clone()))
            .collect()
    }
    /// Handles cancelled while running.
    #[must_use]
    pub fn cancelled(&self) -> Vec<String> {
        self.lock().cancelled.clone()
    }
    /// Claims of every key-pair JWT accepted.
    #[must_use]
    pub fn jwts(&self) -> Vec<JwtSeen> {
        self.lock().jwts.clone()
    }
    /// The `X-Snowflake-Authorization-Token-Type` of every authenticated request.
    #[must_use]
    pub fn token_types(&self) -> Vec<String> {
        self.lock().token_types.clone()
    }
}

/// `SHA256:<base64>` of a PEM public key's DER (what Snowflake shows as `RSA_PUBLIC_KEY_FP`).
#[must_use]
pub fn public_key_fingerprint(pem: &str) -> String {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default();
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&der))
    )
}

// ---------------------------------------------------------------------------------------------
// HTTP handlers.
// ---------------------------------------------------------------------------------------------

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A 200 JSON answer sent gzip-encoded.
fn gzip_json(body: &serde_json::Value) -> Response {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let zipped = enc
        .write_all(body.to_string().as_bytes())
        .and_then(|()| enc.finish());
    match zipped {
        Ok(bytes) => (
            StatusCode::OK,
            [
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"message": format!("fake could not gzip: {e}")}),
        ),
    }
}

fn unauthorized(code: &str, message: &str) -> Response {
    json(
        StatusCode::UNAUTHORIZED,
        serde_json::json!({"code": code, "message": message}),
    )
}

fn check_auth(inner: &mut Inner, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return Err(Box::new(unauthorized(
            "390101",
            "Authorization header is missing or malformed.",
        )));
    };
    let kind = headers
        .get("x-snowflake-authorization-token-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("OAUTH")
        .to_ascii_uppercase();
    match kind.as_str() {
        "KEYPAIR_JWT" => {
            let seen =
                verify_jwt(&inner.cfg, token).map_err(|m| Box::new(unauthorized("390144", &m)))?;
            inner.jwts.push(seen);
        }
        "OAUTH" => {
            if !inner.cfg.oauth_tokens.iter().any(|t| t == token) {
                return Err(Box::new(unauthorized(
                    "390303",
                    "Invalid OAuth access token.",
                )));
            }
        }
        "PROGRAMMATIC_ACCESS_TOKEN" => {
            if !inner.cfg.pats.iter().any(|t| t == token) {
                return Err(Box::new(unauthorized(
                    "394400",
                    "Programmatic access token is invalid.",
                )));
            }
        }
        other => {
            return Err(Box::new(unauthorized(
                "390100",
                &format!("Unsupported authorization token type {other}."),
            )));
        }
    }
    inner.token_types.push(kind);
    Ok(())
}

fn verify_jwt(cfg: &Config, token: &str) -> Result<JwtSeen, String> {
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    let invalid = |why: &str| format!("JWT token is invalid. [{why}]");
    let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
    if header.alg != Algorithm::RS256 {
        return Err(invalid("algorithm must be RS256"));
    }
    // Read the claims first to find the key by the fingerprint in `iss`.
    let payload = token
        .split('.')
        .nth(1)
        .ok_or_else(|| invalid("malformed"))?;
    let claims: serde_json::Value = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| invalid("malformed claims"))?;
    let iss = claims["iss"].as_str().unwrap_or_default().to_owned();
    let sub = claims["sub"].as_str().unwrap_or_default().to_owned();
    let (prefix, fp) = iss
        .split_once(".SHA256:")
        .ok_or_else(|| invalid("iss must be ACCOUNT.USER.SHA256:<fingerprint>"))?;
    let expected_sub = format!("{}.{}", cfg.account, cfg.user);
    if sub != expected_sub || prefix != expected_sub {
        return Err(invalid(&format!("iss/sub must name {expected_sub}")));
    }
    let fp = format!("SHA256:{fp}");
    let pem = cfg
        .keys
        .iter()
        .find(|(f, _)| *f == fp)
        .map(|(_, p)| p)
        .ok_or_else(|| invalid("public key fingerprint does not match"))?;
    let key =
        DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| invalid("fake misconfigured"))?;
    let mut v = Validation::new(Algorithm::RS256);
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    v.leeway = 60;
    let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
        .map_err(|e| invalid(&format!("{:?}", e.kind())))?;
    let iat = data.claims["iat"]
        .as_i64()
        .ok_or_else(|| invalid("iat missing"))?;
    let exp = data.claims["exp"]
        .as_i64()
        .ok_or_else(|| invalid("exp missing"))?;
    if exp - iat > 3600 {
        return Err(invalid("lifetime over one hour"));
    }
    if iat > chrono::Utc::now().timestamp() + 60 {
        return Err(invalid("issued in the future"));
    }
    Ok(JwtSeen { iss, sub, iat, exp })
}

fn status_url(headers: &HeaderMap, handle: &str) -> String {
    let host = headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}/api/v2/statements/{handle}")
}

fn running_body(off_spec: bool, handle: &str, url: &str, created_on: i64) -> serde_json::Value {
    let h = if off_spec {
        serde_json::json!(42)
    } else {
        serde_json::json!(handle)
    };
    serde_json::json!({
        "code": "333334",
        "message": "Asynchronous execution in progress. Use provided query id to perform query monitoring and management.",
        "statementHandle": h,
        "statementStatusUrl": url,
        "createdOn": created_on,
    })
}

fn failure_body(e: &FakeSqlError, handle: &str, url: &str, created_on: i64) -> serde_json::Value {
    serde_json::json!({
        "code": e.code,
        "sqlState": e.sql_state,
        "message": e.message,
        "statementHandle": handle,
        "statementStatusUrl": url,
        "createdOn": created_on,
    })
}

fn result_body(
    cfg: &Config,
    out: &Output,
    handle: &str,
    url: &str,
    created_on: i64,
) -> serde_json::Value {
    let per = cfg.rows_per_partition.max(1);
    let chunks: Vec<&[Vec<Option<String>>]> = if out.rows.is_empty() {
        vec![&[]]
    } else {
        out.rows.chunks(per).collect()
    };
    let partition_info: Vec<serde_json::Value> = chunks
        .iter()
        .map(|c| serde_json::json!({"rowCount": c.len(), "uncompressedSize": serde_json::to_string(c).map(|s| s.len()).unwrap_or(0)}))
        .collect();
    let row_type: Vec<serde_json::Value> = out
        .columns
        .iter()
        .map(|(name, ty)| row_type_entry(name, ty))
        .collect();
    let mut body = serde_json::json!({
        "resultSetMetaData": {
            "numRows": out.rows.len(),
            "format": "jsonv2",
            "partitionInfo": partition_info,
            "rowType": row_type,
        },
        "data": chunks[0],
        "code": "090001",
        "sqlState": "00000",
        "statementStatusUrl": url,
        "statementHandle": handle,
        "message": "Statement executed successfully.",
        "createdOn": created_on,
    });
    if let Some(h) = &out.statement_handles {
        body["statementHandles"] = serde_json::json!(h);
    }
    body
}

async fn submit(
    State(fake): State<SnowflakeFake>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut guard = fake.lock();
    let inner: &mut Inner = &mut guard;
    if let Err(r) = check_auth(inner, &headers) {
        return *r;
    }
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": "390142", "message": "Incoming request body is not valid JSON."}),
        );
    };
    let Some(text) = req["statement"].as_str().map(str::to_owned) else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"code": "390142", "message": "statement is required."}),
        );
    };
    let request_id = q.get("requestId").cloned();
    let retry = q.get("retry").is_some_and(|v| v == "true");
    let is_async = q.get("async").is_some_and(|v| v == "true");
    let params = &req["parameters"];
    let count_value = params
        .get("MULTI_STATEMENT_COUNT")
        .or_else(|| params.get("multi_statement_count"));
    let statement_count = count_value.and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
    });
    let ctx = |k: &str| req[k].as_str().map(str::to_owned);
    let mut submission = Submission {
        request_id: request_id.clone(),
        retry,
        handle: String::new(),
        executed: true,
        statement_count,
        context: [
            ctx("warehouse"),
            ctx("role"),
            ctx("database"),
            ctx("schema"),
        ],
        query_tag: params
            .get("query_tag")
            .and_then(|v| v.as_str())
            .map(str::to_owned),
    };
    let url_for = |h: &str| status_url(&headers, h);
    // A resubmission with retry=true finds the statement the first submit started.
    if retry
        && let Some(rid) = &request_id
        && let Some(h) = inner.by_request.get(rid).cloned()
        && let Some(st) = inner.statements.get(&h)
        && !matches!(st.state, StmtState::Failed(_) | StmtState::Cancelled)
    {
        submission.handle = h.clone();
        submission.executed = false;
        let created = st.created_on;
        let resp = match &st.state {
            StmtState::Done(out) => json(
                StatusCode::OK,
                result_body(&inner.cfg, out, &h, &url_for(&h), created),
            ),
            _ => json(
                StatusCode::ACCEPTED,
                running_body(inner.cfg.off_spec, &h, &url_for(&h), created),
            ),
        };
        inner.submissions.push(submission);
        return resp;
    }
    let handle = uuid::Uuid::new_v4().to_string();
    let created_on = chrono::Utc::now().timestamp_millis();
    submission.handle = handle.clone();
    if let Some(rid) = &request_id {
        inner.by_request.insert(rid.clone(), handle.clone());
    }
    let count = match sql::tokenize(&text) {
        Ok(tokens) => sql::split_statements(tokens).len(),
        Err(e) => {
            let err = sql_error(
                "001003",
                "42000",
                format!(
                    "SQL compilation error:\nsyntax error line 1 at position {} {}.",
                    e.position, e.message
                ),
            );
            inner.statements.insert(
                handle.clone(),
                stmt(
                    &text,
                    1,
                    0,
                    StmtState::Failed(err.clone()),
                    &submission,
                    created_on,
                ),
            );
            inner.submissions.push(submission);
            return json(
                StatusCode::UNPROCESSABLE_ENTITY,
                failure_body(&err, &handle, &url_for(&handle), created_on),
            );
        }
    };
    let wanted = statement_count.unwrap_or(1);
    if wanted != 0 && usize::try_from(wanted).ok() != Some(count) {
        let err = sql_error(
            "000008",
            "0A000",
            format!(
                "Actual statement count {count} did not match the desired statement count {wanted}."
            ),
        );
        inner.statements.insert(
            handle.clone(),
            stmt(
                &text,
                count,
                0,
                StmtState::Failed(err.clone()),
                &submission,
                created_on,
            ),
        );
        inner.submissions.push(submission);
        return json(
            StatusCode::UNPROCESSABLE_ENTITY,
            failure_body(&err, &handle, &url_for(&handle), created_on),
        );
    }
    let polls = if is_async {
        inner.cfg.polls_before_done
    } else {
        0
    };
    inner.statements.insert(
        handle.clone(),
        stmt(
            &text,
            count,
            polls,
            StmtState::Running,
            &submission,
            created_on,
        ),
    );
    inner.submissions.push(submission);
    if is_async {
        return json(
            StatusCode::ACCEPTED,
            running_body(inner.cfg.off_spec, &handle, &url_for(&handle), created_on),
        );
    }
    finish(inner, &handle);
    answer(inner, &handle, &url_for(&handle))
}

fn stmt(
    text: &str,
    count: usize,
    polls: u32,
    state: StmtState,
    s: &Submission,
    created_on: i64,
) -> Stmt {
    Stmt {
        sql: text.to_owned(),
        count,
        polls_left: polls,
        state,
        warehouse: s.context[0].clone(),
        database: s.context[2].clone(),
        schema: s.context[3].clone(),
        created_on,
    }
}

/// The current answer for a statement.
fn answer(inner: &Inner, handle: &str, url: &str) -> Response {
    let Some(st) = inner.statements.get(handle) else {
        let err = sql_error("000709", "02000", format!("Statement {handle} not found"));
        return json(
            StatusCode::UNPROCESSABLE_ENTITY,
            failure_body(&err, handle, url, 0),
        );
    };
    match &st.state {
        StmtState::Running => json(
            StatusCode::ACCEPTED,
            running_body(inner.cfg.off_spec, handle, url, st.created_on),
        ),
        StmtState::Done(out) => json(
            StatusCode::OK,
            result_body(&inner.cfg, out, handle, url, st.created_on),
        ),
        StmtState::Failed(e) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            failure_body(e, handle, url, st.created_on),
        ),
        StmtState::Cancelled => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            failure_body(
                &sql_error("000604", "57014", "SQL execution canceled"),
                handle,
                url,
                st.created_on,
            ),
        ),
    }
}

async fn status(
    State(fake): State<SnowflakeFake>,
    Path(handle): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut guard = fake.lock();
    let inner: &mut Inner = &mut guard;
    if let Err(r) = check_auth(inner, &headers) {
        return *r;
    }
    let url = status_url(&headers, &handle);
    if let Some(st) = inner.statements.get_mut(&handle)
        && matches!(st.state, StmtState::Running)
    {
        if st.polls_left > 0 {
            st.polls_left -= 1;
            let (off, created) = (inner.cfg.off_spec, st.created_on);
            return json(
                StatusCode::ACCEPTED,
                running_body(off, &handle, &url, created),
            );
        }
        finish(inner, &handle);
    }
    let partition: usize = q.get("partition").and_then(|p| p.parse().ok()).unwrap_or(0);
    if partition > 0 {
        let Some(StmtState::Done(out)) = inner.statements.get(&handle).map(|s| &s.state) else {
            return answer(inner, &handle, &url);
        };
        let chunk: Vec<&[Vec<Option<String>>]> = out
            .rows
            .chunks(inner.cfg.rows_per_partition.max(1))
            .collect();
        return match chunk.get(partition) {
            Some(rows) if inner.cfg.gzip_partitions => {
                gzip_json(&serde_json::json!({"data": rows}))
            }
            Some(rows) => json(StatusCode::OK, serde_json::json!({"data": rows})),
            None => json(
                StatusCode::UNPROCESSABLE_ENTITY,
                failure_body(
                    &sql_error(
                        "000709",
                        "02000",
                        format!("Partition {partition} does not exist"),
                    ),
                    &handle,
                    &url,
                    0,
                ),
            ),
        };
    }
    answer(inner, &handle, &url)
}

async fn cancel(
    State(fake): State<SnowflakeFake>,
    Path(handle): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut guard = fake.lock();
    let inner: &mut Inner = &mut guard;
    if let Err(r) = check_auth(inner, &headers) {
        return *r;
    }
    let url = status_url(&headers, &handle);
    let Some(st) = inner.statements.get_mut(&handle) else {
        let err = sql_error("000709", "02000", format!("Statement {handle} not found"));
        return json(
            StatusCode::UNPROCESSABLE_ENTITY,
            failure_body(&err, &handle, &url, 0),
        );
    };
    if matches!(st.state, StmtState::Running) {
        st.state = StmtState::Cancelled;
        inner.cancelled.push(handle.clone());
    }
    json(
        StatusCode::OK,
        serde_json::json!({"message": "successfully canceled", "statementHandle": handle, "statementStatusUrl": url}),
    )
}

// ---------------------------------------------------------------------------------------------
// Execution.
// ---------------------------------------------------------------------------------------------

/// Runs a finished statement's SQL and records its outcome.
fn finish(inner: &mut Inner, handle: &str) {
    let Some(st) = inner.statements.get(handle).cloned() else {
        return;
    };
    let outcome = execute_batch(inner, &st);
    let created = st.created_on;
    let state = match outcome {
        Ok(mut outs) if st.count == 1 => StmtState::Done(outs.pop().unwrap_or_default()),
        Ok(outs) => {
            let mut children = Vec::new();
            for out in outs {
                let h = uuid::Uuid::new_v4().to_string();
                let mut child = st.clone();
                child.count = 1;
                child.polls_left = 0;
                child.state = StmtState::Done(out);
                child.created_on = created;
                inner.statements.insert(h.clone(), child);
                children.push(h);
            }
            StmtState::Done(Output {
                columns: vec![("multiple statement execution", "text")],
                rows: vec![vec![Some(
                    "Multiple statements executed successfully.".into(),
                )]],
                statement_handles: Some(children),
            })
        }
        Err(e) => StmtState::Failed(e),
    };
    if let Some(s) = inner.statements.get_mut(handle) {
        s.state = state;
    }
}

fn status_output(message: &str) -> Output {
    Output {
        columns: vec![("status", "text")],
        rows: vec![vec![Some(message.to_owned())]],
        statement_handles: None,
    }
}

fn execute_batch(inner: &mut Inner, st: &Stmt) -> Result<Vec<Output>, FakeSqlError> {
    let tokens = sql::tokenize(&st.sql).map_err(|e| {
        sql_error(
            "001003",
            "42000",
            format!(
                "SQL compilation error:\nsyntax error at position {} {}.",
                e.position, e.message
            ),
        )
    })?;
    let statements = sql::split_statements(tokens);
    if st.warehouse.is_none() && inner.cfg.default_warehouse.is_none() {
        return Err(sql_error(
            "000606",
            "57P03",
            "No active warehouse selected in the current session.  Select an active warehouse with the 'use warehouse' command.",
        ));
    }
    let Inner {
        cfg,
        store,
        copy_executions,
        ..
    } = inner;
    let mut tx: Option<Store> = None;
    let mut outs = Vec::new();
    for s in statements {
        let first = match s.first() {
            Some(sql::Token::Word(w)) => w.to_ascii_uppercase(),
            _ => String::new(),
        };
        match first.as_str() {
            "BEGIN" => {
                tx = Some(store.clone());
                outs.push(status_output("Statement executed successfully."));
            }
            "COMMIT" => {
                if let Some(t) = tx.take() {
                    *store = t;
                }
                outs.push(status_output("Statement executed successfully."));
            }
            "ROLLBACK" => {
                tx = None;
                outs.push(status_output("Statement executed successfully."));
            }
            "SELECT" => outs.push(Output {
                columns: vec![("CURRENT_VERSION()", "text")],
                rows: vec![vec![Some("9.30.0".into())]],
                statement_handles: None,
            }),
            "COPY" => {
                let cmd = sql::parse_copy(&s).map_err(|m| {
                    sql_error("001003", "42000", format!("SQL compilation error:\n{m}"))
                })?;
                *copy_executions += 1;
                let target = tx.as_mut().unwrap_or(store);
                outs.push(run_copy(cfg, target, &cmd, st)?);
            }
            _ => {
                return Err(sql_error(
                    "001003",
                    "42000",
                    format!(
                        "SQL compilation error:\nsyntax error line 1 at position 0 unexpected '{first}'."
                    ),
                ));
            }
        }
    }
    Ok(outs)
}

/// One `rowType` entry as Snowflake writes it: the fields that do not apply to the column's type
/// are `null`, not 0 (a TEXT column has no precision or scale, a FIXED one no length or
/// byteLength), so clients meet the nulls here as they do against Snowflake.
fn row_type_entry(name: &str, ty: &str) -> serde_json::Value {
    // VARCHAR's default (and maximum) length: 16 MB, in characters and in bytes.
    const TEXT_LENGTH: u64 = 16_777_216;
    match ty {
        "fixed" => serde_json::json!({
            "name": name, "type": ty, "length": null, "byteLength": null,
            "precision": 38, "scale": 0, "nullable": true,
        }),
        _ => serde_json::json!({
            "name": name, "type": ty, "length": TEXT_LENGTH, "byteLength": TEXT_LENGTH,
            "precision": null, "scale": null, "nullable": true,
        }),
    }
}

const COPY_COLUMNS: [(&str, &str); 10] = [
    ("file", "text"),
    ("status", "text"),
    ("rows_parsed", "fixed"),
    ("rows_loaded", "fixed"),
    ("error_limit", "fixed"),
    ("errors_seen", "fixed"),
    ("first_error", "text"),
    ("first_error_line", "fixed"),
    ("first_error_character", "fixed"),
    ("first_error_column_name", "text"),
];

const VALIDATION_COLUMNS: [(&str, &str); 11] = [
    ("ERROR", "text"),
    ("FILE", "text"),
    ("LINE", "fixed"),
    ("CHARACTER", "fixed"),
    ("BYTE_OFFSET", "fixed"),
    ("CATEGORY", "text"),
    ("CODE", "fixed"),
    ("SQL_STATE", "fixed"),
    ("COLUMN_NAME", "text"),
    ("ROW_NUMBER", "fixed"),
    ("ROW_START_LINE", "fixed"),
];

/// Resolves `name` (1–3 parts) against the statement's database and schema.
fn qualify(parts: &[String], st: &Stmt) -> Result<String, FakeSqlError> {
    let missing = |what: &str| {
        sql_error(
            "090105",
            "22000",
            format!(
                "Cannot perform COPY. This session does not have a current {what}. Call 'USE {what}', or use a qualified name."
            ),
        )
    };
    match parts {
        [db, sch, t] => Ok(format!("{db}.{sch}.{t}")),
        [sch, t] => Ok(format!(
            "{}.{sch}.{t}",
            st.database.clone().ok_or_else(|| missing("database"))?
        )),
        [t] => Ok(format!(
            "{}.{}.{t}",
            st.database.clone().ok_or_else(|| missing("database"))?,
            st.schema.clone().ok_or_else(|| missing("schema"))?
        )),
        _ => Err(sql_error(
            "001003",
            "42000",
            "SQL compilation error: bad name",
        )),
    }
}

/// Splits `@"DB"."SCH".STAGE/path` into resolved name parts and the path.
fn parse_stage_ref(text: &str) -> Option<(Vec<String>, String)> {
    let body = text.strip_prefix('@')?;
    let mut in_quotes = false;
    let mut split = body.len();
    for (i, c) in body.char_indices() {
        if c == '"' {
            in_quotes = !in_quotes;
        } else if c == '/' && !in_quotes {
            split = i;
            break;
        }
    }
    let (name, path) = body.split_at(split);
    let tokens = sql::tokenize(name).ok()?;
    let mut parts = Vec::new();
    for t in tokens {
        match t {
            sql::Token::Punct('.') => {}
            other => parts.push(sql::ident_name(&other)?),
        }
    }
    Some((parts, path.trim_start_matches('/').to_owned()))
}

fn run_copy(
    cfg: &Config,
    store: &mut Store,
    cmd: &sql::CopyCommand,
    st: &Stmt,
) -> Result<Output, FakeSqlError> {
    let table_name = qualify(&cmd.table, st)?;
    if !store.tables.contains_key(&table_name) {
        return Err(sql_error(
            "002003",
            "42S02",
            format!(
                "SQL compilation error:\nTable '{table_name}' does not exist or not authorized."
            ),
        ));
    }
    let short_table = cmd.table.last().cloned().unwrap_or_default();
    // Where the files are: an external URL or a stage over one.
    let (base, root_len) = if cmd.from.starts_with('@') {
        let (parts, path) = parse_stage_ref(&cmd.from).ok_or_else(|| {
            sql_error(
                "001003",
                "42000",
                "SQL compilation error: bad stage reference",
            )
        })?;
        let stage = qualify(&parts, st).map_err(|_| {
            sql_error(
                "002003",
                "02000",
                "SQL compilation error: stage name needs a database and schema",
            )
        })?;
        let url = cfg.stages.get(&stage).ok_or_else(|| {
            sql_error(
                "002003",
                "02000",
                format!(
                    "SQL compilation error:\nStage '{stage}' does not exist or not authorized."
                ),
            )
        })?;
        let url = if url.ends_with('/') {
            url.clone()
        } else {
            format!("{url}/")
        };
        (format!("{url}{path}"), url.len())
    } else {
        let from = cmd.from.clone();
        let scheme_end = from.find("://").map_or(0, |i| i + 3);
        let root_end = from[scheme_end..]
            .find('/')
            .map_or(from.len(), |i| scheme_end + i + 1);
        let root_end = if from.starts_with("azure://") {
            from[root_end..]
                .find('/')
                .map_or(from.len(), |i| root_end + i + 1)
        } else {
            root_end
        };
        // External locations need a storage integration or credentials.
        match (
            cmd.word("STORAGE_INTEGRATION"),
            cmd.group_pairs("CREDENTIALS"),
        ) {
            (Some(i), _) if !cfg.integrations.contains(&i) => {
                return Err(sql_error(
                    "002003",
                    "02000",
                    format!(
                        "SQL compilation error:\nIntegration '{i}' does not exist or not authorized."
                    ),
                ));
            }
            (Some(_), _) => {}
            (None, creds) => {
                let has = |k: &str| {
                    creds.iter().any(|(key, v)| {
                        key == k && matches!(v, sql::Token::Str(s) if !s.is_empty())
                    })
                };
                let ok = if from.starts_with("s3://") {
                    has("AWS_KEY_ID") && has("AWS_SECRET_KEY")
                } else if from.starts_with("azure://") {
                    has("AZURE_SAS_TOKEN")
                } else {
                    false
                };
                if !ok {
                    return Err(sql_error(
                        "091003",
                        "42000",
                        "Failure using stage area. Cause: [Access Denied (Status Code: 403; Error Code: AccessDenied)]",
                    ));
                }
            }
        }
        (from, root_end)
    };
    let force = cmd.flag("FORCE");
    let uncertain_ok = cmd.flag("LOAD_UNCERTAIN_FILES");
    let validation = cmd.word("VALIDATION_MODE");
    let on_error = cmd
        .word("ON_ERROR")
        .unwrap_or_else(|| "ABORT_STATEMENT".into());
    let loaded = store
        .tables
        .get(&table_name)
        .map(|t| t.loaded.clone())
        .unwrap_or_default();

    // Candidate files: FILES names under the location, or everything under it (PATTERN).
    let mut missing = Vec::new();
    let mut candidates: Vec<FakeFile> = Vec::new();
    let files = cmd.group_strings("FILES");
    if files.is_empty() {
        let pattern = match cmd.option("PATTERN") {
            Some(sql::OptionValue::Str(p)) => {
                Some(regex::Regex::new(&format!("^(?:{p})$")).map_err(|_| {
                    sql_error(
                        "100048",
                        "22023",
                        format!("Invalid regular expression pattern '{p}'"),
                    )
                })?)
            }
            _ => None,
        };
        for f in store.files.values().filter(|f| f.url.starts_with(&base)) {
            let rel = &f.url[root_len.min(f.url.len())..];
            if pattern.as_ref().is_none_or(|p| p.is_match(rel)) {
                candidates.push(f.clone());
            }
        }
    } else {
        let sep = if base.ends_with('/') || base.is_empty() {
            ""
        } else {
            "/"
        };
        for name in files {
            let url = format!("{base}{sep}{name}");
            match store.files.get(&url) {
                Some(f) => candidates.push(f.clone()),
                None => missing.push(url),
            }
        }
    }
    // Load metadata: skip files already loaded, and "uncertain" old files, unless told.
    candidates
        .retain(|f| force || (!loaded.contains(&f.url) && (uncertain_ok || f.age_days <= 64)));

    if validation.is_some() {
        let mut rows = Vec::new();
        for f in &candidates {
            for b in &f.bad_rows {
                rows.push(vec![
                    Some(b.error.clone()),
                    Some(f.url.clone()),
                    Some(b.line.to_string()),
                    Some("1".into()),
                    Some("0".into()),
                    Some("parsing".into()),
                    Some("100069".into()),
                    Some("22P02".into()),
                    Some(format!("\"{short_table}\"[\"{}\":1]", b.column)),
                    Some(b.line.to_string()),
                    Some(b.line.to_string()),
                ]);
            }
        }
        for m in &missing {
            rows.push(vec![
                Some(format!("Remote file '{m}' was not found.")),
                Some(m.clone()),
                None,
                None,
                None,
                Some("missing_file".into()),
                Some("091016".into()),
                Some("22000".into()),
                None,
                None,
                None,
            ]);
        }
        return Ok(Output {
            columns: VALIDATION_COLUMNS.to_vec(),
            rows,
            statement_handles: None,
        });
    }

    let abort = on_error == "ABORT_STATEMENT";
    if abort && let Some(m) = missing.first() {
        return Err(sql_error(
            "091016",
            "22000",
            format!(
                "Remote file '{m}' was not found. If you are running a copy command, please make sure files are not deleted when they are being loaded or files are not being loaded into two different tables concurrently with auto purge option."
            ),
        ));
    }
    if abort && let Some(f) = candidates.iter().find(|f| !f.bad_rows.is_empty()) {
        let b = &f.bad_rows[0];
        return Err(sql_error(
            "100069",
            "22P02",
            format!(
                "{}\n  File '{}', line {}, character 1\n  Row {}, column \"{short_table}\"[\"{}\":1]\n  If you would like to continue loading when an error is encountered, use other values such as 'SKIP_FILE' or 'CONTINUE' for the ON_ERROR option. For more information on loading options, please run 'info loading_data' in a SQL client.",
                b.error, f.url, b.line, b.line, b.column
            ),
        ));
    }
    if candidates.is_empty() && missing.is_empty() {
        return Ok(status_output("Copy executed with 0 files processed."));
    }
    let mut rows = Vec::new();
    let mut newly_loaded = Vec::new();
    let mut added_rows = 0;
    for f in &candidates {
        let errors = u64::try_from(f.bad_rows.len()).unwrap_or(u64::MAX);
        let (status, loaded_rows, limit) = if errors == 0 {
            ("LOADED", f.rows, 1)
        } else {
            let partial = |limit: u64| {
                if errors >= f.rows {
                    ("LOAD_FAILED", 0, limit)
                } else {
                    ("PARTIALLY_LOADED", f.rows - errors, limit)
                }
            };
            match on_error.as_str() {
                "CONTINUE" => partial(f.rows),
                "SKIP_FILE" => ("LOAD_FAILED", 0, 1),
                other => {
                    let n = other.trim_start_matches("SKIP_FILE_");
                    if let Some(pct) = n.strip_suffix('%') {
                        let pct: u64 = pct.parse().unwrap_or(100);
                        let limit = (f.rows * pct).div_ceil(100);
                        if errors * 100 >= pct * f.rows {
                            ("LOAD_FAILED", 0, limit)
                        } else {
                            partial(limit)
                        }
                    } else {
                        let n: u64 = n.parse().unwrap_or(1);
                        if errors >= n {
                            ("LOAD_FAILED", 0, n)
                        } else {
                            partial(n)
                        }
                    }
                }
            }
        };
        if status != "LOAD_FAILED" {
            newly_loaded.push(f.url.clone());
            added_rows += loaded_rows;
        }
        let first = f.bad_rows.first();
        rows.push(vec![
            Some(f.url.clone()),
            Some(status.to_owned()),
            Some(f.rows.to_string()),
            Some(loaded_rows.to_string()),
            Some(limit.to_string()),
            Some(errors.to_string()),
            first.map(|b| b.error.clone()),
            first.map(|b| b.line.to_string()),
            first.map(|_| "1".to_owned()),
            first.map(|b| format!("\"{short_table}\"[\"{}\":1]", b.column)),
        ]);
    }
    for m in &missing {
        let msg = format!("Remote file '{m}' was not found.");
        rows.push(vec![
            Some(m.clone()),
            Some("LOAD_FAILED".into()),
            Some("0".into()),
            Some("0".into()),
            Some("1".into()),
            Some("1".into()),
            Some(msg),
            None,
            None,
            None,
        ]);
    }
    if let Some(t) = store.tables.get_mut(&table_name) {
        t.rows += added_rows;
        t.loaded.extend(newly_loaded.iter().cloned());
    }
    if cmd.flag("PURGE") {
        for url in &newly_loaded {
            store.files.remove(url);
        }
    }
    Ok(Output {
        columns: COPY_COLUMNS.to_vec(),
        rows,
        statement_handles: None,
    })
}

/// The answer the Snowflake SQL API gives for `status` (403, 404, 500 or 503), to inject with
/// [`crate::FakeServer::inject_on`]: the API's error object (`code`, `message`) with the
/// meaning sqlapi.yaml gives each status (403: the API is not enabled or the role may not use
/// it; 404: the endpoint or handle is unknown; 500: an unrecoverable server error; 503: not
/// processed, retry with backoff).
///
/// # Panics
/// For any other status (a test setup error).
#[must_use]
pub fn error_fault(status: u16) -> crate::Fault {
    // sqlapi.yaml documents what each status means but no body for these; the body is the
    // API's error object with the message only (the fake's own 404 code is kept).
    let body = match status {
        403 => {
            serde_json::json!({"message": "Forbidden. The request is forbidden: the SQL API is not enabled for this account or user."})
        }
        404 => {
            serde_json::json!({"code": "390404", "message": "Not Found. The request endpoint is not valid."})
        }
        500 => {
            serde_json::json!({"message": "Internal Server Error. The server hits an unrecoverable system error."})
        }
        503 => {
            serde_json::json!({"message": "Service Unavailable. The request was not processed due to server side timeouts."})
        }
        other => panic!("no Snowflake wording for HTTP {other}"),
    };
    crate::Fault::Answer {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}
