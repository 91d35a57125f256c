import sys

from .bench import main

sys.argv[0] = "python -m benchmarks"  # what its usage line shows
sys.exit(main())
