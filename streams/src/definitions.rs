//! The stream definitions in `streams/*.json`, and applying them to a server.
//!
//! Each file is a JetStream stream configuration exactly as `nats stream add --config FILE`
//! takes it, so operators and jetim create identical streams. The files are compiled into the
//! binary; `jetim` applies them at start:
//! - a stream that does not exist is created;
//! - a stream whose settings match every field the file declares is left alone;
//! - a stream that differs is updated, and the differences are reported;
//! - a change the server cannot make in place (storage, retention, or anything the server
//!   refuses) is refused with a message naming each field, the server's value and the file's.
//!
//! Only the fields a file declares are compared; the server fills in the rest with defaults
//! (and, from 2.11, `_nats.*` metadata), which are not a difference.

use async_nats::jetstream;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::Config as StreamConfig;
use serde_json::Value;

/// One `streams/*.json` file, parsed.
#[derive(Debug, Clone)]
pub struct StreamDefinition {
    /// Where the definition came from, for messages.
    pub source: String,
    /// The configuration to apply.
    pub config: StreamConfig,
    declared: serde_json::Map<String, Value>,
}

/// A definition that cannot be read, or a stream that cannot be made to match it.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    /// The file is not a valid stream configuration.
    #[error("{source_name}: not a valid stream configuration: {error}")]
    Invalid {
        /// The definition's file name.
        source_name: String,
        /// What serde said.
        error: serde_json::Error,
    },
    /// The stream exists with settings that cannot be changed in place.
    #[error(
        "stream {stream} differs from {source_name} in a way that cannot be applied in place: {differences}{server}"
    )]
    Incompatible {
        /// The stream name.
        stream: String,
        /// The definition's file name.
        source_name: String,
        /// Each differing field with both values.
        differences: String,
        /// The server's own refusal, if it gave one.
        server: String,
    },
    /// The server could not be asked.
    #[error("stream {stream}: {action} failed: {error}")]
    Server {
        /// The stream name.
        stream: String,
        /// What was attempted.
        action: &'static str,
        /// The client's error.
        error: String,
    },
}

/// One field whose value on the server differs from the definition.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldDifference {
    /// The JSON field name, as in the file.
    pub field: String,
    /// The value on the server (`null` when unset).
    pub server: Value,
    /// The value in the definition.
    pub declared: Value,
}

impl std::fmt::Display for FieldDifference {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "{} is {} on the server but {} in the definition",
            self.field, self.server, self.declared
        )
    }
}

/// What applying one definition did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The stream did not exist and was created.
    Created,
    /// The stream already matched.
    Unchanged,
    /// The stream was updated; these fields changed.
    Updated(Vec<FieldDifference>),
}

/// Fields the server never changes on an existing stream.
const FIXED_FIELDS: &[&str] = &["name", "storage", "retention"];

const EMBEDDED: &[(&str, &str)] = &[
    ("streams/IM_CONV.json", include_str!("../IM_CONV.json")),
    ("streams/IM_USER.json", include_str!("../IM_USER.json")),
];

impl StreamDefinition {
    /// Parses one definition file's text.
    pub fn parse(source_name: &str, text: &str) -> Result<Self, DefinitionError> {
        let invalid = |error| DefinitionError::Invalid {
            source_name: source_name.to_owned(),
            error,
        };
        let declared: serde_json::Map<String, Value> =
            serde_json::from_str(text).map_err(invalid)?;
        let config: StreamConfig =
            serde_json::from_value(Value::Object(declared.clone())).map_err(invalid)?;
        Ok(Self {
            source: source_name.to_owned(),
            config,
            declared,
        })
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Sets the replica count (1 in development, 3 in production), overriding the file.
    pub fn with_replicas(mut self, replicas: usize) -> Self {
        self.config.num_replicas = replicas;
        self.declared
            .insert("num_replicas".to_owned(), Value::from(replicas));
        self
    }

    /// The declared fields whose server values differ.
    pub fn differences(&self, server: &StreamConfig) -> Vec<FieldDifference> {
        let declared = comparable(&self.config);
        let actual = comparable(server);
        self.declared
            .keys()
            .filter_map(|field| {
                let declared_value = declared.get(field).cloned().unwrap_or(Value::Null);
                let server_value = actual.get(field).cloned().unwrap_or(Value::Null);
                (declared_value != server_value).then(|| FieldDifference {
                    field: field.clone(),
                    server: server_value,
                    declared: declared_value,
                })
            })
            .collect()
    }
}

/// A config as JSON, through the same serializer for both sides so defaults compare equal.
fn comparable(config: &StreamConfig) -> serde_json::Map<String, Value> {
    match serde_json::to_value(config) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    }
}

/// The definitions compiled into this build, from `streams/*.json`.
pub fn embedded() -> Result<Vec<StreamDefinition>, DefinitionError> {
    EMBEDDED
        .iter()
        .map(|(source, text)| StreamDefinition::parse(source, text))
        .collect()
}

/// Makes the server's stream match `definition`.
#[tracing::instrument(name = "apply_stream", skip_all, fields(stream = definition.name()))]
pub async fn apply(
    jetstream: &jetstream::Context,
    definition: &StreamDefinition,
) -> Result<Applied, DefinitionError> {
    let stream_name = definition.name().to_owned();
    let server_error = |action, error: &dyn std::fmt::Display| DefinitionError::Server {
        stream: stream_name.clone(),
        action,
        error: error.to_string(),
    };
    let existing = match jetstream.get_stream(&stream_name).await {
        Ok(mut stream) => Some(
            stream
                .info()
                .await
                .map_err(|error| server_error("reading stream info", &error))?
                .config
                .clone(),
        ),
        Err(error)
            if matches!(
                error.kind(),
                GetStreamErrorKind::JetStream(ref js_error)
                    if js_error.error_code() == ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            None
        }
        Err(error) => return Err(server_error("looking up the stream", &error)),
    };
    let Some(existing) = existing else {
        jetstream
            .create_stream(definition.config.clone())
            .await
            .map_err(|error| server_error("creating the stream", &error))?;
        tracing::info!(stream = %stream_name, source = %definition.source, "stream created");
        return Ok(Applied::Created);
    };

    let differences = definition.differences(&existing);
    if differences.is_empty() {
        return Ok(Applied::Unchanged);
    }
    let describe = |differences: &[FieldDifference]| {
        differences
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let fixed: Vec<FieldDifference> = differences
        .iter()
        .filter(|difference| FIXED_FIELDS.contains(&difference.field.as_str()))
        .cloned()
        .collect();
    if !fixed.is_empty() {
        return Err(DefinitionError::Incompatible {
            stream: stream_name,
            source_name: definition.source.clone(),
            differences: describe(&fixed),
            server: String::new(),
        });
    }
    match jetstream.update_stream(definition.config.clone()).await {
        Ok(_) => {
            tracing::info!(
                stream = %stream_name,
                changes = %describe(&differences),
                "stream updated"
            );
            Ok(Applied::Updated(differences))
        }
        Err(error) => Err(DefinitionError::Incompatible {
            stream: stream_name,
            source_name: definition.source.clone(),
            differences: describe(&differences),
            server: format!(" (the server says: {error})"),
        }),
    }
}

/// Applies every embedded definition with the configured replica count.
pub async fn apply_all(
    jetstream: &jetstream::Context,
    replicas: usize,
) -> Result<Vec<(String, Applied)>, DefinitionError> {
    let mut outcomes = Vec::new();
    for definition in embedded()? {
        let definition = definition.with_replicas(replicas);
        let applied = apply(jetstream, &definition).await?;
        outcomes.push((definition.name().to_owned(), applied));
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_definitions_parse_and_cover_both_streams() {
        let definitions = embedded().unwrap();
        let names: Vec<&str> = definitions.iter().map(StreamDefinition::name).collect();
        assert_eq!(names, ["IM_CONV", "IM_USER"]);
        for definition in &definitions {
            assert_eq!(
                definition.config.storage,
                async_nats::jetstream::stream::StorageType::File
            );
            assert!(
                definition.config.allow_direct,
                "the append path reads by direct get"
            );
            assert_eq!(definition.config.max_age, std::time::Duration::ZERO);
        }
    }

    #[test]
    fn a_definition_matches_its_own_config() {
        for definition in embedded().unwrap() {
            assert!(definition.differences(&definition.config).is_empty());
        }
    }

    #[test]
    fn only_declared_fields_are_compared() {
        let definition = embedded().unwrap().remove(0);
        let mut server = definition.config.clone();
        // What a 2.11+ server adds on its own is not a difference.
        server
            .metadata
            .insert("_nats.req.level".to_owned(), "0".to_owned());
        server.allow_rollup = true;
        assert!(definition.differences(&server).is_empty());
        server.subjects = vec!["y.>".into()];
        let differences = definition.differences(&server);
        assert_eq!(differences.len(), 1);
        assert_eq!(differences[0].field, "subjects");
        assert_eq!(
            differences[0].to_string(),
            r#"subjects is ["y.>"] on the server but ["im.conv.>"] in the definition"#
        );
    }

    #[test]
    fn a_broken_file_names_itself() {
        let error = StreamDefinition::parse("streams/BAD.json", "{\"name\": 3}").unwrap_err();
        assert!(error.to_string().starts_with("streams/BAD.json: "));
    }
}
