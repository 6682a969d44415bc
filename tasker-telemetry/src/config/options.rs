//! `options!`: the one declaration of every configuration option.
//!
//! Each option is written once, in [`config`](super)'s table, with its type, default, builder
//! setter, how `Debug` shows it, its validation and the environment variables that set it. This
//! macro generates from that table:
//!
//! - the [`TelemetryConfig`](super::TelemetryConfig) struct (fields, docs, serde attributes) and
//!   its `Default` and `Debug` impls;
//! - one [`TelemetryConfigBuilder`](super::TelemetryConfigBuilder) setter per option;
//! - [`TelemetryConfig::validate`](super::TelemetryConfig::validate), calling each option's check
//!   in table order;
//! - the list of options with how each is shown, for
//!   [`EffectiveConfig`](super::EffectiveConfig);
//! - [`ENVIRONMENT_VARIABLES`](super::ENVIRONMENT_VARIABLES), the variables in the order they are
//!   applied (a later one wins for the same field), each with the code that sets its field, and
//!   the notes that [`environment_table`](super::environment_table) renders for the docs.
//!
//! An entry reads:
//!
//! ```text
//! /// Docs (and serde attributes) for the field.
//! name: Type = default;
//!     set(value: SetterType) = conversion;
//!     show plain | secret | url;
//!     check check_fn;                   // fn(field, &value, &config) -> Result<(), ConfigError>
//!     env [
//!         "VARIABLE" [as "nested.field"] => |config, value| assignment, "notes";
//!     ]
//! ```

macro_rules! options {
    (@show plain $value:expr) => {
        &$value
    };
    (@show secret $value:expr) => {
        &$value.as_ref().map(|_| $crate::config::REDACTED)
    };
    (@show url $value:expr) => {
        &$value.as_deref().map($crate::redact::url)
    };
    (@shown plain) => {
        provenance::Shown::Plain
    };
    (@shown secret) => {
        provenance::Shown::Secret
    };
    (@shown url) => {
        provenance::Shown::Url
    };
    (@field $field:ident) => {
        stringify!($field)
    };
    (@field $field:ident $path:literal) => {
        $path
    };
    (
        $(
            $(#[$attr:meta])*
            $field:ident: $ty:ty = $default:expr;
                set($setter_arg:ident: $setter_ty:ty) = $setter_value:expr;
                show $show:ident;
                check $check:expr;
                env [$(
                    $variable:literal $(as $path:literal)? => |$config:ident, $value:ident| $apply:expr, $notes:literal;
                )*]
        )*
    ) => {
        /// Every telemetry option, with Tasker's defaults.
        ///
        /// Build one with [`TelemetryConfig::default`], [`TelemetryConfig::builder`], or from a
        /// file ([`from_path`](Self::from_path)), then layer the environment on top with
        /// [`with_env`](Self::with_env). Fields are public for reading; the struct is
        /// `#[non_exhaustive]` so new options are not breaking changes.
        ///
        /// Serialization includes `metrics_auth_token` so a configuration round-trips; `Debug`
        /// never shows it.
        ///
        /// ```
        /// use tasker_telemetry::TelemetryConfig;
        /// use tasker_telemetry::config::MetricsFormat;
        ///
        /// let config = TelemetryConfig::builder()
        ///     .service_name("billing")
        ///     .metrics_format(MetricsFormat::Json)
        ///     .metrics_auth_required(true)
        ///     .metrics_auth_token("s3cret")
        ///     .build()?;
        /// assert_eq!(config.service_name, "billing");
        /// assert!(!format!("{config:?}").contains("s3cret"));
        /// # Ok::<(), tasker_telemetry::ConfigError>(())
        /// ```
        #[derive(Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        #[non_exhaustive]
        pub struct TelemetryConfig {
            $(
                $(#[$attr])*
                pub $field: $ty,
            )*
        }

        impl Default for TelemetryConfig {
            fn default() -> Self {
                Self {
                    $($field: $default,)*
                }
            }
        }

        impl fmt::Debug for TelemetryConfig {
            // Generated so that a secret can never reach a log through `{:?}`.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct("TelemetryConfig")
                    $(.field(stringify!($field), options!(@show $show self.$field)))*
                    .finish()
            }
        }

        impl TelemetryConfig {
            /// Checks every field, returning the first problem in field order.
            ///
            /// # Errors
            /// [`ConfigError::Invalid`] naming the field, the value and what is accepted.
            pub fn validate(&self) -> Result<(), ConfigError> {
                $(check_option(stringify!($field), &self.$field, self, $check)?;)*
                Ok(())
            }
        }

        impl TelemetryConfigBuilder {
            $(
                #[doc = concat!("Sets [`TelemetryConfig::", stringify!($field), "`].")]
                pub fn $field(mut self, $setter_arg: $setter_ty) -> Self {
                    self.config.$field = $setter_value;
                    self
                }
            )*
        }

        /// Each option's name and how it is shown, for [`EffectiveConfig`](super::EffectiveConfig).
        const SHOWN: &[(&str, provenance::Shown)] = &[
            $((stringify!($field), options!(@shown $show)),)*
        ];

        /// Every environment variable [`TelemetryConfig::with_env`] reads, in the order they
        /// are applied: a later one overrides an earlier one for the same field.
        pub const ENVIRONMENT_VARIABLES: &[EnvVariable] = &[
            $($(
                EnvVariable {
                    name: $variable,
                    field: options!(@field $field $($path)?),
                    notes: $notes,
                    apply: |$config: &mut TelemetryConfig, $value: &EnvValue<'_>| -> Result<(), Rejected> {
                        $apply;
                        Ok(())
                    },
                },
            )*)*
        ];
    };
}

pub(super) use options;
