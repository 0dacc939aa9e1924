#!/bin/sh
# A student's "handin": prints a greeting and the score line Autolab parses.
echo "Hello from the sandbox"
echo '{"scores": {"hello": 100}}'
