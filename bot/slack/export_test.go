package slack

// Scopes is the table of the Web API methods the adapter calls and the
// scopes they need, for the tests of manifest.yml.
var Scopes = scopes
