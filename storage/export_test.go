package storage

// Dialer is the client's dialer, for tests that connect through a TLS
// proxy with their own certificate authority.
var Dialer = dialer
