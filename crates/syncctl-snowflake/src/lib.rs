//! Snowflake SQL API v2 client and the partitioned COPY INTO builder.
