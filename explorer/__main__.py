import sys

from explorer.cli import main

# Guarded: a worker process started by multiprocessing imports the main module again, as __mp_main__.
if __name__ == "__main__":
    sys.exit(main())
