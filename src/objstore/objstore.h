// The S3-compatible object store (`cumulo s3 -c FILE`): the S3 REST API with SigV4, a durable storage engine
// with an ordered index, and encryption at rest. Configuration: docs/configuration.md; design:
// docs/objstore.md.
#pragma once

#include <string>
#include <string_view>

namespace cumulo::objstore {

// Runs until SIGINT or SIGTERM (then finishes in-flight requests, 10 s at most). Returns the exit code: 0
// after a clean stop, 2 when the configuration (or the master key file) is invalid, 1 when start-up fails.
int run(const std::string& config_path);

// Parses and validates a configuration file; throws core::ConfigError naming file, line and column.
void check_config(const std::string& config_path);

// The S3 bucket naming rules ("Bucket naming rules", general purpose buckets), for files that name buckets.
bool valid_bucket_name(std::string_view name);

}  // namespace cumulo::objstore
