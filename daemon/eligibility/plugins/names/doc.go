// Package names holds the names of the built-in eligibility plugins, so configuration
// code and plugins refer to one constant.
package names
