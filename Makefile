# Shorthands for dev.py (which needs nothing but Python and a C++ compiler).
PYTHON ?= python3

.PHONY: build demo test bench clean
build:
	$(PYTHON) dev.py build
demo:
	$(PYTHON) dev.py demo
test:
	$(PYTHON) dev.py test
bench:
	$(PYTHON) dev.py bench
clean:
	rm -rf build demo_out
