module github.com/herald-sse/herald

go 1.26.0

require (
	github.com/golang-jwt/jwt/v5 v5.3.1
	github.com/google/uuid v1.6.0
	github.com/yosida95/uritemplate/v3 v3.0.2
	golang.org/x/sys v0.49.0
)

require github.com/tmaxmax/go-sse v0.12.0

require go.etcd.io/bbolt v1.5.0 // indirect
