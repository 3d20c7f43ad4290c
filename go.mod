module github.com/herald-sse/herald

go 1.26
