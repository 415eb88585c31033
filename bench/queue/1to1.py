# queue_1to1 in Python: 1 producer(s) -> 1 consumer(s) through one
# queue.Queue(1024). usage: python3 1to1.py [N]
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
from flow import run

run(1, "queue_1to1")
